"""Operations on runs: start, pause, resume, cancel, abort, redrive, signal.

Each validates its input and the run's status first and says plainly why it
refuses; each change and its history row and dispatch commit together.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.business_key import compute_key
from engine.clock import Clock
from engine.definition import Definition
from engine.errors import IdempotencyConflictError, IllegalOperationError, InvalidParamsError
from engine.jsonvalues import check_json_object, is_unicode
from engine.persistence import Database, require_run
from engine.queries import FINISHED, RunInfo
from engine.recorder import RunRecorder
from engine.registry import Registry
from models.engine import WorkflowRun

MAX_KEY = 200

#: Writes a run's owning records: ``setup(session, run_id)``.
Setup = Callable[[Session, str], None]


class Operations:
    """The write side of the engine API."""

    def __init__(
        self, db: Database, registry: Registry, recorder: RunRecorder, clock: Clock
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._clock = clock

    def start(
        self,
        workflow: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        pause_at: str | None = None,
        setup: Setup | None = None,
    ) -> RunInfo:
        """Start a run; with an idempotency key, the same key returns the same run.

        ``setup(session, run_id)`` writes the run's owning records in the same
        transaction: if it raises, nothing of the run is written.
        """
        definition = self._registry.get(workflow)
        clean = check_json_object(params, "params")
        _check_key(idempotency_key)
        if pause_at is not None:
            _check_pause_state(definition, pause_at, definition.initial, including_current=True)
        business_key = compute_key(definition.name, definition.business_key, clean)
        try:
            with self._db.transaction() as session:
                existing = _by_key(session, workflow, idempotency_key)
                if existing is not None:
                    return _same_start(existing, clean)
                run = self._new_run(definition, clean, idempotency_key, pause_at)
                run.business_key = business_key
                session.add(run)
                if setup is not None:
                    session.flush()
                    setup(session, run.id)
                self._recorder.move(
                    session, run, "start", definition.initial, now=self._clock.now()
                )
                return RunInfo.of(run)
        except IntegrityError:
            if idempotency_key is None:
                raise
            with self._db.transaction() as session:  # a concurrent start won the key
                existing = _by_key(session, workflow, idempotency_key)
                assert existing is not None
                return _same_start(existing, clean)

    def pause(self, run_id: str, *, at: str | None = None) -> RunInfo:
        """Pause now (at the next step boundary if a step is running) or at a state ahead."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            if at is not None:
                return self._pause_at(run, at)
            _require_status(run, ("running",), "paused")
            if run.claimed:
                run.pause_requested = True  # applies when the running step's successor is claimed
            else:
                self._recorder.halt(session, run, "paused", "pause", now=self._clock.now())
            return RunInfo.of(run)

    def _pause_at(self, run: WorkflowRun, at: str) -> RunInfo:
        _require_status(run, ("running", "paused"), "paused at a later state")
        definition = self._registry.get(run.workflow)
        _check_pause_state(
            definition, at, run.state, including_current=not run.claimed, run_id=run.id
        )
        run.pause_at = at
        run.updated_at = self._clock.now()
        return RunInfo.of(run)

    def resume(self, run_id: str) -> RunInfo:
        """Resume a paused run at the exact step where it stopped."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require_status(run, ("paused",), "resumed")
            self._check_state_known(run)
            now = self._clock.now()
            run.status = "running"
            self._recorder.history(session, run, "resume", run.state, now=now)
            self._recorder.dispatch(session, run, now=now)
            return RunInfo.of(run)

    def cancel(self, run_id: str) -> RunInfo:
        """Cancel in an orderly way: a running step finishes first; nothing after it starts."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require_status(run, ("running", "paused"), "cancelled")
            if run.status == "running" and run.claimed:
                run.cancel_requested = True
                run.updated_at = self._clock.now()
            else:
                self._recorder.halt(session, run, "cancelled", "cancel", now=self._clock.now())
            return RunInfo.of(run)

    def abort(self, run_id: str, *, reason: str = "Aborted by an operator") -> RunInfo:
        """Stop now: the run fails, and a running step's completion is fenced off."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require_status(run, ("running", "paused"), "aborted")
            detail = {
                "error_type": "Aborted",
                "error_message": reason,
                "step_was_running": run.claimed,
            }
            self._recorder.fail(
                session, run, reason, detail, now=self._clock.now(), trigger="abort"
            )
            return RunInfo.of(run)

    def redrive(self, run_id: str) -> RunInfo:
        """Continue a failed run from its failed state with a fresh attempt budget."""
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require_status(run, ("failed",), "redriven")
            self._check_state_known(run)
            now = self._clock.now()
            run.status = "running"
            run.failure_reason = None
            run.failure_detail = None
            run.finished_at = None
            run.attempt = 0
            run.polls = 0
            run.state_entered_at = now
            self._recorder.history(session, run, "redrive", run.state, now=now)
            self._recorder.dispatch(session, run, now=now)
            return RunInfo.of(run)

    def signal(self, run_id: str, trigger: str, data: dict[str, Any] | None = None) -> RunInfo:
        """Fire a declared trigger from outside; ``data`` is merged into the run context."""
        clean = check_json_object(data, "signal data")
        with self._db.transaction() as session:
            run = require_run(session, run_id)
            _require_status(run, ("running",), "signalled")
            definition = self._registry.get(run.workflow)
            dest = definition.destination(run.state, trigger)
            if dest is None:
                allowed = ", ".join(map(repr, definition.triggers_from(run.state))) or "(none)"
                raise IllegalOperationError(
                    f"run {run.id} is in state {run.state!r}, where signal {trigger!r} is not "
                    f"declared; allowed: {allowed}"
                )
            if clean:
                run.context = {**run.context, **clean}
            self._recorder.move(
                session,
                run,
                trigger,
                dest,
                now=self._clock.now(),
                detail={"signal": True, "data": clean or None},
            )
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
            id=new_run_id(),
            workflow=definition.name,
            definition_version=definition.version,
            state="",
            status="running",
            params=params,
            context={},
            attempt=0,
            polls=0,
            token=0,
            claimed=False,
            state_entered_at=now,
            entry_seq=0,
            history_len=0,
            pause_requested=False,
            pause_at=pause_at,
            cancel_requested=False,
            idempotency_key=key,
            created_at=now,
            updated_at=now,
        )

    def _check_state_known(self, run: WorkflowRun) -> None:
        definition = self._registry.get(run.workflow)
        if run.state not in definition.steps:
            raise IllegalOperationError(
                f"run {run.id} stopped in state {run.state!r}, which workflow "
                f"{run.workflow!r} no longer has; states: {', '.join(definition.steps)}"
            )


def _require_status(run: WorkflowRun, allowed: tuple[str, ...], verb: str) -> None:
    if run.status in allowed:
        return
    finished = " (it has finished)" if run.status in FINISHED else ""
    raise IllegalOperationError(
        f"run {run.id} is {run.status}{finished}; only a run that is "
        f"{' or '.join(allowed)} can be {verb}"
    )


def _check_pause_state(
    definition: Definition,
    at: str,
    current: str,
    *,
    including_current: bool,
    run_id: str | None = None,
) -> None:
    if at not in definition.steps:
        raise InvalidParamsError(
            f"cannot pause at {at!r}: workflow {definition.name!r} has no such state with a "
            f"step; states: {', '.join(s for s in definition.states if s in definition.steps)}"
        )
    ahead = set(definition.ahead_of(current)) | ({current} if including_current else set())
    if at not in ahead:
        who = f"run {run_id} is in {current!r}" if run_id else f"runs start in {current!r}"
        listed = ", ".join(s for s in definition.states if s in ahead and s in definition.steps)
        raise IllegalOperationError(
            f"cannot pause at {at!r}: {who}, and {at!r} is not ahead of it; "
            f"states ahead: {listed or '(none)'}"
        )


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
    if existing.params != params:
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
