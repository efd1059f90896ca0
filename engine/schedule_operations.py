"""What an operator does with schedules: list, add, remove, pause, resume, trigger.

Every operation validates its input first and says plainly why it refuses; each
change commits in one transaction. Declared schedules come from the code (see
``Scheduler.sync``): they can be paused, resumed and triggered, not added or removed.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from statewright.errors import IllegalOperationError, ScheduleError
from statewright.jsonvalues import check_json_object
from statewright.models.schedules import WorkflowSchedule
from statewright.operations import Operations
from statewright.persistence import Database
from statewright.queries import RunInfo
from statewright.registry import Registry
from statewright.schedule import DEFAULT_CATCH_UP_LIMIT, Schedule, next_fire
from statewright.scheduler import ScheduleInfo, Scheduler, new_row

_OPERATOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
#: How many names a refusal lists.
_LISTED = 20


class ScheduleOperations:
    """The schedules API of an engine (``engine.schedules``)."""

    def __init__(
        self, db: Database, registry: Registry, operations: Operations, scheduler: Scheduler
    ) -> None:
        self._db = db
        self._registry = registry
        self._operations = operations
        self.scheduler = scheduler

    def sync(self) -> int:
        """Make declared schedules' rows match the code; returns how many rows changed."""
        return self.scheduler.sync()

    def fire_due(self) -> int:
        """Start the runs of every due schedule (a relay round does this); returns how many."""
        return self.scheduler.fire_due()

    def list(self, *, workflow: str | None = None) -> list[ScheduleInfo]:
        """Every schedule (or one workflow's), by name."""
        statement = select(WorkflowSchedule).order_by(WorkflowSchedule.name)
        if workflow is not None:
            statement = statement.where(WorkflowSchedule.workflow == workflow)
        with self._db.reads() as session:
            return [ScheduleInfo.of(row) for row in session.execute(statement).scalars()]

    def get(self, name: str) -> ScheduleInfo:
        """The schedule named ``name``; ``ScheduleError`` names the known ones."""
        with self._db.reads() as session:
            return ScheduleInfo.of(_require(session, name, lock=False))

    def add(
        self,
        name: str,
        workflow: str,
        cron: str,
        *,
        params: dict[str, Any] | None = None,
        timezone: str = "UTC",
        missed: str = "skip",
        catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT,
        paused: bool = False,
    ) -> ScheduleInfo:
        """Add an operator's schedule: start a run of ``workflow`` at every fire time."""
        if not isinstance(name, str) or not _OPERATOR_NAME.match(name):
            raise ScheduleError(
                f"schedule name {name!r} is not allowed; use up to 100 lowercase letters, "
                "digits, _ and -, starting with a letter or digit (names with a dot belong "
                "to schedules declared by workflows)"
            )
        self._registry.get(workflow)
        schedule = Schedule(
            name,
            cron,
            params=check_json_object(params, "params"),
            timezone=timezone,
            missed=missed,
            catch_up_limit=catch_up_limit,
        )
        try:
            with self._db.transaction() as session:
                if session.get(WorkflowSchedule, name) is not None:
                    raise _exists(name)
                row = new_row(name, workflow, schedule, self.scheduler.now(session), declared=False)
                row.paused = paused
                session.add(row)
                session.flush()
                return ScheduleInfo.of(row)
        except IntegrityError:
            raise _exists(name) from None

    def remove(self, name: str) -> ScheduleInfo:
        """Remove an operator's schedule; runs it started are left as they are."""
        with self._db.transaction() as session:
            row = _require(session, name)
            if row.declared:
                raise IllegalOperationError(
                    f"schedule {name!r} is declared by workflow {row.workflow!r} in code; "
                    "remove it there, or pause it"
                )
            info = ScheduleInfo.of(row)
            session.delete(row)
            return info

    def pause(self, name: str) -> ScheduleInfo:
        """Stop firing until resumed (fire times passing meanwhile are not caught up)."""
        with self._db.transaction() as session:
            row = _require(session, name)
            if row.paused:
                raise IllegalOperationError(f"schedule {name!r} is already paused")
            row.paused = True
            row.updated_at = self.scheduler.now(session)
            return ScheduleInfo.of(row)

    def resume(self, name: str) -> ScheduleInfo:
        """Fire again, from the first fire time after now."""
        with self._db.transaction() as session:
            row = _require(session, name)
            if not row.paused:
                raise IllegalOperationError(f"schedule {name!r} is not paused")
            now = self.scheduler.now(session)
            row.paused = False
            row.next_fire_at = next_fire(row.cron, row.timezone, now)
            row.updated_at = now
            return ScheduleInfo.of(row)

    def trigger(self, name: str) -> RunInfo:
        """Start a run of the schedule now, paused or not; its fire times stay as they are."""
        with self._db.transaction() as session:
            row = _require(session, name)
            now = self.scheduler.now(session)
            key = f"schedule:{row.name}:manual:{now.isoformat()}"
            run, _ = self._operations.start_in(session, row.workflow, row.params, key)
            row.last_run_id = run.id
            row.updated_at = now
            return run


def _require(session: Session, name: str, *, lock: bool = True) -> WorkflowSchedule:
    statement = select(WorkflowSchedule).where(WorkflowSchedule.name == str(name))
    if lock:
        statement = statement.with_for_update()
    row = session.execute(statement).scalar_one_or_none()
    if row is not None:
        return row
    known = list(
        session.execute(
            select(WorkflowSchedule.name).order_by(WorkflowSchedule.name).limit(_LISTED + 1)
        ).scalars()
    )
    listed = ", ".join(map(repr, known[:_LISTED])) or "(none)"
    more = ", …" if len(known) > _LISTED else ""
    raise ScheduleError(f"no schedule named {name!r}; schedules: {listed}{more}")


def _exists(name: str) -> ScheduleError:
    return ScheduleError(f"a schedule named {name!r} already exists; remove it first")
