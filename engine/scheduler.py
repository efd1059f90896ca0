"""Schedules are rows: whichever relay claims a due schedule fires it.

Each ``workflow_schedules`` row holds its next fire time. A relay round claims the
due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so relays running at once take
different rows; SQLite's write transaction serializes them), and in one transaction
starts a run per fire time that the missed-fire policy keeps, each with the
idempotency key ``schedule:<name>:<fire time>``, and moves the row to its next fire
time. Either all of that commits or none of it: a fire time is started once, by one
relay. Whether a schedule is due is judged by the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from statewright.clock import Clock
from statewright.dbtime import now_in
from statewright.definition import Definition
from statewright.metrics import Metrics
from statewright.models.schedules import WorkflowSchedule
from statewright.operations import Operations
from statewright.persistence import Database
from statewright.registry import Registry
from statewright.schedule import Schedule, next_fire, plan_fires

log = structlog.get_logger("statewright.scheduler")

#: Due schedules claimed per transaction, and transactions per relay round.
BATCH = 100
MAX_BATCHES = 10


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as it stood when it was read."""

    name: str
    workflow: str
    cron: str
    timezone: str
    params: dict[str, Any]
    missed: str
    catch_up_limit: int
    declared: bool
    paused: bool
    next_fire_at: datetime | None
    last_fired_at: datetime | None
    last_run_id: str | None

    @classmethod
    def of(cls, row: WorkflowSchedule) -> ScheduleInfo:
        return cls(
            name=row.name,
            workflow=row.workflow,
            cron=row.cron,
            timezone=row.timezone,
            params=dict(row.params),
            missed=row.missed,
            catch_up_limit=row.catch_up_limit,
            declared=row.declared,
            paused=row.paused,
            next_fire_at=row.next_fire_at,
            last_fired_at=row.last_fired_at,
            last_run_id=row.last_run_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workflow": self.workflow,
            "cron": self.cron,
            "timezone": self.timezone,
            "params": self.params,
            "missed": self.missed,
            "catch_up_limit": self.catch_up_limit,
            "declared": self.declared,
            "paused": self.paused,
            "next_fire_at": _iso(self.next_fire_at),
            "last_fired_at": _iso(self.last_fired_at),
            "last_run_id": self.last_run_id,
        }


def fire_key(name: str, moment: datetime) -> str:
    """The idempotency key of the run a schedule starts for one fire time."""
    return f"schedule:{name}:{moment.astimezone(UTC).isoformat()}"


def declared_name(workflow: str, schedule: str) -> str:
    """The row name of a schedule declared by a workflow."""
    return f"{workflow}.{schedule}"


class Scheduler:
    """Fires due schedules, and keeps declared schedules' rows in step with the code.

    ``clock`` of ``None`` judges fire times by the database's clock.
    """

    def __init__(
        self,
        db: Database,
        registry: Registry,
        operations: Operations,
        metrics: Metrics,
        clock: Clock | None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._operations = operations
        self._metrics = metrics
        self._clock = clock

    def now(self, session: Session) -> datetime:
        """The time fire times are judged by."""
        return now_in(session, self._clock)

    # -- firing ------------------------------------------------------------------

    def fire_due(self) -> int:
        """Start the runs of every due schedule this process knows; returns how many.

        A read looks first, so a round with nothing due takes no lock (on SQLite, the
        write lock every step also needs).
        """
        started = 0
        if not self._anything_due():
            return 0
        for _ in range(MAX_BATCHES):
            claimed, fired = self._fire_batch()
            started += fired
            if claimed < BATCH:
                break
        return started

    def _fire_batch(self) -> tuple[int, int]:
        with self._db.transaction() as session:
            now = self.now(session)
            rows = session.execute(self._due(now)).scalars().all()
            fired = sum(self._fire(session, row, now) for row in rows)
        return len(rows), fired

    def _anything_due(self) -> bool:
        with self._db.reads() as session:
            now = self.now(session)
            return session.execute(self._due(now, lock=False)).first() is not None

    def _due(self, now: datetime, *, lock: bool = True) -> Select[WorkflowSchedule]:
        statement = (
            select(WorkflowSchedule)
            .where(
                WorkflowSchedule.paused.is_(False),
                WorkflowSchedule.next_fire_at <= now,
                WorkflowSchedule.workflow.in_(list(self._registry.definitions)),
            )
            .order_by(WorkflowSchedule.next_fire_at, WorkflowSchedule.name)
            .limit(BATCH)
        )
        if lock and not self._db.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        return statement

    def _fire(self, session: Session, row: WorkflowSchedule, now: datetime) -> int:
        """Start the fire times the policy keeps and move the row on; a schedule that
        cannot start its run keeps its fire time and is tried again next round."""
        assert row.next_fire_at is not None
        due_at = row.next_fire_at
        try:
            plan = plan_fires(row.cron, row.timezone, due_at, now, row.missed, row.catch_up_limit)
            with session.begin_nested():
                started = [self._start(session, row, moment) for moment in plan.fire]
        except Exception as error:  # one broken schedule must not hold the others back
            self._metrics.incr("schedule.failed", tags={"workflow": row.workflow})
            log.error("schedule could not start its run", schedule=row.name, error=repr(error))
            return 0
        if plan.skipped:
            self._metrics.incr("schedule.skipped", plan.skipped, {"workflow": row.workflow})
            log.warning(
                "missed fire times skipped",
                schedule=row.name,
                policy=row.missed,
                skipped=plan.skipped,
                missed_since=due_at.isoformat(),
            )
        row.next_fire_at = plan.next_fire_at
        if plan.fire:
            row.last_fired_at = plan.fire[-1]
            row.last_run_id = started[-1]
        row.updated_at = now
        return len(plan.fire)

    def _start(self, session: Session, row: WorkflowSchedule, moment: datetime) -> str:
        key = fire_key(row.name, moment)
        run, new = self._operations.start_in(session, row.workflow, row.params, key)
        if new:
            self._metrics.incr("schedule.fired", tags={"workflow": row.workflow})
            log.info("schedule fired", schedule=row.name, fire_time=moment.isoformat(), run=run.id)
        else:
            self._metrics.incr("schedule.duplicate", tags={"workflow": row.workflow})
            log.warning("fire time already started", schedule=row.name, key=key, run=run.id)
        return run.id

    def next_due(self, *, after: datetime | None = None) -> datetime | None:
        """The earliest fire time (past ``after``, if given) of a schedule that is not
        paused, or ``None``."""
        statement = select(func.min(WorkflowSchedule.next_fire_at)).where(
            WorkflowSchedule.paused.is_(False),
            WorkflowSchedule.workflow.in_(list(self._registry.definitions)),
        )
        if after is not None:
            statement = statement.where(WorkflowSchedule.next_fire_at > after)
        with self._db.reads() as session:
            due: datetime | None = session.execute(statement).scalar()
            return due

    # -- declared schedules --------------------------------------------------------

    def sync(self) -> int:
        """Make the rows of declared schedules match the code of the workflows this
        process knows; returns how many rows were added, changed or removed.

        Idempotent: a row whose cron and timezone are unchanged keeps its next fire
        time, and every row keeps its paused flag.
        """
        changed = 0
        for definition in self._registry.definitions.values():
            try:
                changed += self._sync_workflow(definition)
            except IntegrityError:  # another process added the same rows a moment ago
                changed += self._sync_workflow(definition)
        return changed

    def _sync_workflow(self, definition: Definition) -> int:
        wanted = {declared_name(definition.name, s.name): s for s in definition.schedules}
        with self._db.transaction() as session:
            now = self.now(session)
            rows = _declared_rows(session, definition.name, lock=not self._db.is_sqlite)
            gone = [name for name in rows if name not in wanted]
            if gone:
                session.execute(delete(WorkflowSchedule).where(WorkflowSchedule.name.in_(gone)))
            changed = len(gone)
            for name, schedule in wanted.items():
                row = rows.get(name)
                if row is None:
                    session.add(new_row(name, definition.name, schedule, now, declared=True))
                    changed += 1
                elif _update(row, schedule, now):
                    changed += 1
            session.flush()
        return changed


def new_row(
    name: str, workflow: str, schedule: Schedule, now: datetime, *, declared: bool
) -> WorkflowSchedule:
    """A schedule row due at its first fire time after ``now``."""
    return WorkflowSchedule(
        name=name,
        workflow=workflow,
        cron=schedule.cron,
        timezone=schedule.timezone,
        params=dict(schedule.params),
        missed=schedule.missed,
        catch_up_limit=schedule.catch_up_limit,
        declared=declared,
        paused=False,
        next_fire_at=next_fire(schedule.cron, schedule.timezone, now),
        created_at=now,
        updated_at=now,
    )


def _declared_rows(session: Session, workflow: str, *, lock: bool) -> dict[str, WorkflowSchedule]:
    statement = (
        select(WorkflowSchedule)
        .where(WorkflowSchedule.workflow == workflow, WorkflowSchedule.declared.is_(True))
        .order_by(WorkflowSchedule.name)  # relays starting together lock in one order
    )
    if lock:
        statement = statement.with_for_update()
    return {row.name: row for row in session.execute(statement).scalars()}


def _update(row: WorkflowSchedule, schedule: Schedule, now: datetime) -> bool:
    """Bring a declared row in step with its declaration; ``True`` if anything changed.

    A new cron expression or timezone starts over from the next fire time after now.
    """
    moved = (row.cron, row.timezone) != (schedule.cron, schedule.timezone)
    values: dict[str, Any] = {
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "params": dict(schedule.params),
        "missed": schedule.missed,
        "catch_up_limit": schedule.catch_up_limit,
    }
    if moved:
        values["next_fire_at"] = next_fire(schedule.cron, schedule.timezone, now)
    changes = {k: v for k, v in values.items() if getattr(row, k) != v}
    for key, value in changes.items():
        setattr(row, key, value)
    if changes:
        row.updated_at = now
    return bool(changes)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
