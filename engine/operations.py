"""Operations on runs: start, pause, clear a pause, resume, cancel, abort, redrive, signal.

Each validates its input and the run's status first and says plainly why it
refuses; each change and its history row and dispatch commit together.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.activation import activating
from statewright.ahead import check_ahead, steps_ahead, where_it_stands
from statewright.business_key import compute_key
from statewright.clock import Clock
from statewright.definition import Definition
from statewright.errors import IdempotencyConflictError, IllegalOperationError, InvalidParamsError
from statewright.jsonvalues import canonical, check_json_object, is_unicode
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database, require_run
from statewright.queries import RunInfo
from statewright.recorder import RunRecorder
from statewright.registry import Registry
from statewright.run_rows import new_row_columns
from statewright.timers import Timers, merged_context

if TYPE_CHECKING:
    from statewright.fanout import Fanout

MAX_KEY = 200

#: A run's deadline as given to ``start``: seconds or a span from now, or a moment.
Deadline = timedelta | float | datetime

#: Writes a run's owning records: ``setup(session, run_id)``.
Setup = Callable[[Session, str], None]


class Operations:
    """The write side of the engine API."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        clock: Clock,
        timers: Timers,
        run_ids: Callable[[], str] | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._clock = clock
        self._timers = timers
        #: Where new runs' ids come from (``new_run_id`` unless a test injects another).
        self._run_ids = run_ids or new_run_id
        #: Set by the engine: the Map runtime, which queues a redriven Map's failed items.
        self.fanout: Fanout | None = None

    def start(
        self,
        workflow: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        pause_at: str | None = None,
        setup: Setup | None = None,
        deadline: Deadline | None = None,
    ) -> RunInfo:
        """Start a run; with an idempotency key, the same key returns the same run.

        ``setup(session, run_id)`` writes the run's owning records in the same
        transaction: if it raises, nothing of the run is written. ``deadline`` (a span
        from now, or a moment) bounds the whole run, if earlier than the workflow's own.
        """
        definition = self._registry.get(workflow)
        clean = check_json_object(params, "params")
        _check_key(idempotency_key)
        deadline_at = _deadline_at(definition, deadline, self._clock.now())
        if pause_at is not None:
            check_ahead(definition, "pause", pause_at, definition.initial, including_current=True)
        business_key = compute_key(definition.name, definition.business_key, clean)
        try:
            with self._db.transaction() as session:
                existing = _by_key(session, workflow, idempotency_key)
                if existing is not None:
                    return _same_start(existing, clean)
                run = self._new_run(definition, clean, idempotency_key, pause_at)
                run.deadline_at = deadline_at
                run.business_key = business_key
                session.add(run)
                if setup is not None:
                    session.flush()
                    setup(session, run.id)
                activating(session, definition, run, "start")
                self._recorder.move(
                    session, run, "start", definition.initial, now=self._clock.now()
                )
                self._timers.arm_deadline(session, run)
                return RunInfo.of(run)
        except IntegrityError:
            if idempotency_key is None:
                raise
            with self._db.transaction() as session:  # a concurrent start won the key
                existing = _by_key(session, workflow, idempotency_key)
                assert existing is not None
                return _same_start(existing, clean)

    def start_in(
        self,
        session: Session,
        workflow: str,
        params: dict[str, Any],
        key: str,
        *,
        detail: dict[str, Any] | None = None,
    ) -> tuple[RunInfo, bool]:
        """Start a run inside the caller's transaction (a schedule's firing), keyed by
        ``key``; returns the run and whether this call started it (``False``: a run
        with that key already existed and is returned as it stands)."""
        definition = self._registry.get(workflow)
        existing = _by_key(session, workflow, key)
        if existing is not None:
            return RunInfo.of(existing), False
        clean = check_json_object(params, "params")
        run = self._new_run(definition, clean, key, None)
        run.business_key = compute_key(definition.name, definition.business_key, clean)
        session.add(run)
        activating(session, definition, run, "start")
        now = self._clock.now()
        self._recorder.move(session, run, "start", definition.initial, now=now, detail=detail)
        return RunInfo.of(run), True

    def pause(self, run_id: str, *, at: str | None = None) -> RunInfo:
        """Pause now (at the next step boundary if a step is running) or at a state ahead."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            if at is not None:
                return self._pause_at(session, run, at)
            _require(lifecycle.Pause, run)
            if run.claimed:
                self._require_state_after(run)
            self._recorder.change(session, run, lifecycle.Pause(), now=self._clock.now())
            return RunInfo.of(run)

    def _pause_at(self, session: Session, run: WorkflowRun, at: str) -> RunInfo:
        _require(lifecycle.PauseAt, run)
        definition = self._registry.get(run.workflow)
        check_ahead(definition, "pause", at, run.state, **where_it_stands(run))
        now = self._clock.now()
        self._recorder.change(session, run, lifecycle.PauseAt(at), now=now)
        self._recorder.hold(session, run, now=now)  # at a waiting state it is in: now
        return RunInfo.of(run)

    def _require_state_after(self, run: WorkflowRun) -> None:
        """A pause asked for while a step runs applies at a later step: refused when the
        running step is the last one, since the run would only finish past it."""
        definition = self._registry.get(run.workflow)
        if not steps_ahead(definition, run.state):
            raise IllegalOperationError(
                f"run {run.id} is running its last step {run.state!r}; there is no state "
                "left to pause at (it finishes when this step does; cancel or abort it instead)"
            )

    def clear_pause(self, run_id: str) -> RunInfo:
        """Forget a pause asked for but not yet applied (now or at a state ahead); a paused
        run stays paused. Nothing scheduled: nothing changes."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require(lifecycle.ClearPause, run)
            self._recorder.change(session, run, lifecycle.ClearPause(), now=self._clock.now())
            return RunInfo.of(run)

    def resume(self, run_id: str) -> RunInfo:
        """Resume a paused run at the exact step where it stopped, with a fresh attempt
        budget for that step (attempts spent before the pause no longer count)."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require(lifecycle.Resume, run)
            self._check_state_known(run)
            now = self._clock.now()
            kept = list(run.kept_signals or [])
            self._recorder.change(session, run, lifecycle.Resume(), now=now)
            moved = self._timers.deliver_kept(session, run, kept)
            if not moved and not self._recorder.hold(session, run, now=now):
                self._recorder.dispatch(session, run, now=now)
            return RunInfo.of(run)

    def cancel(self, run_id: str, *, at: str | None = None) -> RunInfo:
        """Cancel in an orderly way: a running step finishes first; nothing after it starts.

        With ``at``, cancel when the run reaches that state ahead instead. A run already
        cancelled stays as it is.
        """
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            if run.status == lifecycle.CANCELLED:
                return RunInfo.of(run)
            if at is not None:
                return self._cancel_at(session, run, at)
            _require(lifecycle.Cancel, run)
            self._recorder.change(session, run, lifecycle.Cancel(), now=self._clock.now())
            return RunInfo.of(run)

    def _cancel_at(self, session: Session, run: WorkflowRun, at: str) -> RunInfo:
        _require(lifecycle.CancelAt, run)
        definition = self._registry.get(run.workflow)
        check_ahead(definition, "cancel", at, run.state, **where_it_stands(run))
        now = self._clock.now()
        self._recorder.change(session, run, lifecycle.CancelAt(at), now=now)
        self._recorder.hold(session, run, now=now)  # at a waiting state it is in: now
        return RunInfo.of(run)

    def abort(self, run_id: str, *, reason: str = "Aborted by an operator") -> RunInfo:
        """Stop now: the run fails, and a running step's completion is fenced off."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require(lifecycle.Abort, run)
            detail = {
                "error_type": "Aborted",
                "error_message": reason,
                "step_was_running": run.claimed,
            }
            abort = lifecycle.Abort(reason, detail)
            self._recorder.fail(session, run, abort, now=self._clock.now())
            return RunInfo.of(run)

    def redrive(self, run_id: str) -> RunInfo:
        """Continue a failed run from its failed state with a fresh attempt budget; in a
        Map state, its failed items run again (``statewright.fanout.redrive``). Refused, as a
        start would be, by its workflow's ``@on_activate`` hooks."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            self.redrive_in(session, run)
            return RunInfo.of(run)

    def redrive_in(self, session: Session, run: WorkflowRun) -> None:
        """Redrive the locked ``run`` in the caller's transaction (a redriven Map's fill
        redrives its failed item runs this way)."""
        _require(lifecycle.Redrive, run)
        self._check_state_known(run)
        activating(session, self._registry.get(run.workflow), run, "redrive")
        now = self._clock.now()
        self._recorder.change(session, run, lifecycle.Redrive(), now=now)
        if self.fanout is not None:
            self.fanout.redriven(session, run)
        self._recorder.dispatch(session, run, now=now)
        self._timers.arm_deadline(session, run)

    def signal(self, run_id: str, trigger: str, data: dict[str, Any] | None = None) -> RunInfo:
        """Fire a declared trigger from outside. In a waiting state, its signal handler
        gets ``data``; elsewhere (or without one) ``data`` is merged into the run context.
        A paused run keeps the signal and receives it when it resumes."""
        clean = check_json_object(data, "signal data")
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            if clean:
                merged_context(run, clean)  # refused now, not at the next step
            if run.status == lifecycle.PAUSED:
                self._timers.keep(session, run, trigger, clean)
                return RunInfo.of(run)
            if run.status != lifecycle.RUNNING:
                self._timers.refuse_late(session, run, trigger)
            _require(lifecycle.Signal, run)
            self._timers.signal(session, run, trigger, clean)
            return RunInfo.of(run)

    def _new_run(
        self,
        definition: Definition,
        params: dict[str, Any],
        key: str | None,
        pause_at: str | None,
    ) -> WorkflowRun:
        now = self._clock.now()
        return WorkflowRun(
            id=self._run_ids(),
            workflow=definition.name,
            definition_version=definition.version,
            params=params,
            context={},
            idempotency_key=key,
            created_at=now,
            **new_row_columns(lifecycle.started(now, pause_at=pause_at)),
        )

    def _check_state_known(self, run: WorkflowRun) -> None:
        definition = self._registry.get(run.workflow)
        if run.state not in definition.steps:
            raise IllegalOperationError(
                f"run {run.id} stopped in state {run.state!r}, which workflow "
                f"{run.workflow!r} no longer has; states: {', '.join(definition.steps)}"
            )


def _require(event: type[lifecycle.Event], run: WorkflowRun) -> None:
    """Refuse, naming the run's status and those allowed, unless ``event`` may happen."""
    why = lifecycle.refusal(event, run.status)
    if why is not None:
        raise IllegalOperationError(f"run {run.id} {why}")


def _deadline_at(definition: Definition, asked: Deadline | None, now: datetime) -> datetime | None:
    """When a run started now must finish: the earlier of the workflow's deadline and
    ``asked``; ``None`` if neither sets one."""
    moments: list[datetime] = []
    rule = definition.deadline
    if rule is not None and rule.after is not None:
        moments.append(now + rule.after)
    if asked is not None:
        moments.append(_asked_moment(asked, now))
    return min(moments) if moments else None


def _asked_moment(asked: object, now: datetime) -> datetime:
    moment: datetime | None = None
    try:
        if isinstance(asked, datetime):
            moment = asked if asked.tzinfo is not None else None
        elif isinstance(asked, timedelta):
            moment = now + asked
        elif isinstance(asked, int | float) and not isinstance(asked, bool):
            moment = now + timedelta(seconds=asked)
    except (OverflowError, ValueError):
        moment = None
    if moment is None or moment <= now:
        raise InvalidParamsError(
            f"deadline {asked!r} is not allowed; give a positive number of seconds, a "
            "positive timedelta, or a timezone-aware datetime in the future"
        )
    return moment


def _check_key(key: str | None) -> None:
    if key is None:
        return
    if (
        not isinstance(key, str)
        or not key.strip()
        or len(key) > MAX_KEY
        or not key.isprintable()
        or not is_unicode(key)
    ):
        raise InvalidParamsError(
            f"idempotency key {key!r} is not allowed; use a non-empty string of at most "
            f"{MAX_KEY} characters"
        )


def _by_key(session: Session, workflow: str, key: str | None) -> WorkflowRun | None:
    if key is None:
        return None
    return session.execute(
        select(WorkflowRun).where(
            WorkflowRun.workflow == workflow, WorkflowRun.idempotency_key == key
        )
    ).scalar_one_or_none()


def _same_start(existing: WorkflowRun, params: dict[str, Any]) -> RunInfo:
    if canonical(existing.params) != canonical(params):
        raise IdempotencyConflictError(
            f"idempotency key {existing.idempotency_key!r} already started run {existing.id} "
            "with different params; use a new key for different params"
        )
    return RunInfo.of(existing)


def new_run_id() -> str:
    """32 lowercase hex digits: the creation time in milliseconds, then 80 random bits.

    Ids of runs started close together sort together, so the rows and index entries
    that active runs touch (their run row, their history) stay on a few hot pages
    however many finished runs the tables hold, instead of landing anywhere in them.
    """
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
