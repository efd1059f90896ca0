"""Writing what happens to a run: state, token, history row and outbox row, together.

Every method takes a locked run inside the caller's transaction; nothing here
commits, so a transition and its history and dispatch land atomically.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import ColumnElement

from statewright.config import Settings
from statewright.context import Claim
from statewright.dispatch import Dispatcher
from statewright.metrics import Metrics
from statewright.models.engine import OutboxMessage, WorkflowRun, WorkflowTransition
from statewright.polls import fold_poll
from statewright.redaction import redact_text, redact_value
from statewright.registry import Registry, task_queue


class Advanced(enum.Enum):
    """What ``advance_claimed`` did."""

    #: The run had moved on (an abort, a reaper): nothing was written.
    FENCED = "fenced"
    #: The run finished.
    FINISHED = "finished"
    #: The next step's message was written to the outbox, to be sent after commit.
    DISPATCHED = "dispatched"
    #: The next step is claimed by this worker, which runs it once this commits.
    CLAIMED = "claimed"


class RunRecorder:
    """Applies moves to locked runs and records each one in the history."""

    def __init__(
        self,
        registry: Registry,
        dispatcher: Dispatcher,
        settings: Settings,
        metrics: Metrics,
        queue_of: Callable[[str], str] | None = None,
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._settings = settings
        self._metrics = metrics
        #: The queue of a task that is not a workflow's (raises for an unknown task).
        self._queue_of = queue_of

    def history(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        to_state: str,
        *,
        now: datetime,
        duration_ms: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Append one history row (from the run's current state) and return its position."""
        run.history_len += 1
        run.updated_at = now
        session.add(
            WorkflowTransition(
                run_id=run.id,
                seq=run.history_len,
                from_state=run.state or None,
                trigger=trigger,
                to_state=to_state,
                attempt=run.attempt,
                token=run.token,
                at=now,
                duration_ms=duration_ms,
                detail=redact_value("detail", detail) if detail else detail,
            )
        )
        return run.history_len

    def enqueue(
        self,
        session: Session,
        task_name: str,
        *,
        kwargs: dict[str, Any],
        run_id: str | None = None,
    ) -> None:
        """Dispatch a task after ``session`` commits, on its own queue; its outbox row
        stays until the task finishes (see ``statewright.deliveries``)."""
        found = self._registry.task_spec(task_name)
        if found is not None:
            queue = task_queue(*found, self._settings.default_queue)
        elif self._queue_of is not None:
            queue = self._queue_of(task_name)
        else:
            queue = self._settings.default_queue
        self._dispatcher.enqueue(session, task_name, kwargs=kwargs, queue=queue, run_id=run_id)

    def dispatch(
        self,
        session: Session,
        run: WorkflowRun,
        *,
        now: datetime,
        not_before: datetime | None = None,
    ) -> None:
        """Send the current state's step under a new token; unclaimed until a worker claims it."""
        run.token += 1
        run.claimed = False
        self.redeliver(session, run, now=now, not_before=not_before)

    def redeliver(
        self,
        session: Session,
        run: WorkflowRun,
        *,
        now: datetime,
        not_before: datetime | None = None,
        backoff: int = 1,
    ) -> None:
        """Send the current step's message again under the same token (a lost delivery);
        it may wait ``backoff`` dispatch timeouts for a worker.

        If both copies arrive, the second finds the step claimed and is dropped.
        A waiting state's message is its timeout timer, due when the timeout passes.
        """
        step = self._registry.step(run.workflow, run.state)
        at = not_before or now
        if step.wait is not None:
            if step.wait.timeout is None:
                run.lease_expires_at = None  # nothing to send: only a signal moves it
                return
            at = max(now, run.state_entered_at + step.wait.timeout)
        wait = self._settings.dispatch_timeout * backoff
        run.lease_expires_at = at + timedelta(seconds=wait)
        self._dispatcher.enqueue(
            session,
            step.task_name,
            kwargs={"run_id": run.id, "token": run.token},
            queue=step.queue,
            not_before=at,
            run_id=run.id,
            token=run.token,
        )

    def move(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        dest: str,
        *,
        now: datetime,
        duration_ms: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Take a declared transition: enter ``dest``, then dispatch it or finish the run.

        Leaving a waiting state drops its timeout timer; entering one with a pause or
        cancel asked for applies it there, since no step will be claimed to apply it.
        """
        definition = self._registry.get(run.workflow)
        if definition.wait(run.state) is not None:
            self._dispatcher.discard_for_run(session, run.id, steps_only=True)
        seq = self.history(
            session, run, trigger, dest, now=now, duration_ms=duration_ms, detail=detail
        )
        run.state = dest
        run.attempt = 0
        run.polls = 0
        run.state_entered_at = now
        run.entry_seq = seq
        if definition.is_terminal(dest):
            self.finish(session, run, "succeeded", now=now)
        elif definition.wait(dest) is None or not self._held_on_entry(session, run, now):
            self.dispatch(session, run, now=now)

    def _held_on_entry(self, session: Session, run: WorkflowRun, now: datetime) -> bool:
        """Apply a cancel or pause asked for on entering a waiting state; whether one was."""
        if run.cancel_requested:
            self.halt(session, run, "cancelled", "cancel", now=now)
        elif run.pause_requested or run.pause_at == run.state:
            if run.pause_at == run.state:
                run.pause_at = None
            self.halt(session, run, "paused", "pause", now=now)
        else:
            return False
        return True

    def advance_claimed(
        self,
        session: Session,
        claim: Claim,
        trigger: str,
        dest: str,
        context: dict[str, Any],
        now: datetime,
        duration_ms: float,
        *,
        claim_lease: datetime | None = None,
    ) -> tuple[Advanced, Claim | None]:
        """``move`` for a step this worker holds, without loading the run: one fenced
        ``UPDATE`` (the run is still running, claimed, under the claim's token) and the
        inserts of its history and outbox rows.

        With ``claim_lease``, the same ``UPDATE`` also claims ``dest``'s step for this
        worker (attempt 1, leased until ``claim_lease``) instead of dispatching it,
        unless a pause or cancel is asked for, which the step's message then applies:
        the result says which happened.

        While a claim is ours nothing but the pause and cancel flags can change the run
        (every other move bumps the token), so the claim is the run as it stands. The
        statements are built once and bound per step; on PostgreSQL they are one
        statement (data-modifying CTEs), elsewhere three. A claimed next step comes back
        with its claim, read from the row the statement wrote.
        """
        terminal = self._registry.get(claim.workflow).is_terminal(dest)
        step = None if terminal else self._registry.step(claim.workflow, dest)
        claim_next = claim_lease is not None and not terminal
        token = claim.token + 1
        params: dict[str, Any] = {
            "a_run_id": claim.run_id,
            "a_token": claim.token,
            "a_new_token": token,
            "a_dest": dest,
            "a_seq": claim.history_len + 1,
            "a_now": now,
            "a_context": context,
            "a_from": claim.state,
            "a_trigger": trigger,
            "a_attempt": claim.attempt,
            "a_duration": duration_ms,
        }
        if step is not None:
            params.update(
                a_lease=now + timedelta(seconds=self._settings.dispatch_timeout),
                a_task=step.task_name,
                a_kwargs={"run_id": claim.run_id, "token": token},
                a_queue=step.queue,
            )
        if claim_next:
            params["a_claim_lease"] = claim_lease
            params["a_marker"] = claim.successor_marker
        # Core statements on the session's connection: no ORM bookkeeping for them
        connection = session.connection()
        outbox_id: int | None = None
        if connection.dialect.name == "postgresql":
            statement = _advance_in_one_statement(terminal, claim_next)
            moved = connection.execute(statement, params).first()
            if moved is None:
                return Advanced.FENCED, None
            outbox_id, claimed = moved.outbox_id, bool(moved.claimed)
        else:
            moved = connection.execute(_fenced_move(terminal, claim_next), params).first()
            if moved is None:
                return Advanced.FENCED, None
            claimed = bool(moved.claimed)
            connection.execute(insert(WorkflowTransition).values(_history_values()), params)
            if terminal:
                self._dispatcher.discard_for_run(session, claim.run_id)
            elif not claimed:
                outbox = insert(OutboxMessage).values(_outbox_values())
                outbox_id = connection.execute(outbox.returning(OutboxMessage.id), params).scalar()
        if step is None:
            self._metrics.incr(
                "run.finished", tags={"workflow": claim.workflow, "status": "succeeded"}
            )
            return Advanced.FINISHED, None
        if claimed:
            return Advanced.CLAIMED, Claim.of(moved)
        assert outbox_id is not None
        self._dispatcher.committed_message(
            session,
            step.task_name,
            outbox_id=outbox_id,
            kwargs=params["a_kwargs"],
            queue=step.queue,
        )
        return Advanced.DISPATCHED, None

    def repeat(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        *,
        now: datetime,
        not_before: datetime,
        duration_ms: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Stay in the state and run its step again at ``not_before`` (a retry or a poll).

        Polls in a row fold into one history row: its ``detail`` counts them (``polls``)
        and keeps the first one's time (``first_at``); its ``at`` is the latest one's.
        """
        if trigger != "poll" or not fold_poll(session, run, now, duration_ms, detail):
            if trigger == "poll":
                detail = {**(detail or {}), "polls": 1, "first_at": now.isoformat()}
            self.history(
                session, run, trigger, run.state, now=now, duration_ms=duration_ms, detail=detail
            )
        self.dispatch(session, run, now=now, not_before=not_before)

    def fail(
        self,
        session: Session,
        run: WorkflowRun,
        reason: str,
        detail: dict[str, Any],
        *,
        now: datetime,
        trigger: str = "fail",
        duration_ms: float | None = None,
    ) -> None:
        """End the run as failed, keeping the readable reason beside the real error."""
        summary = {k: v for k, v in detail.items() if k != "traceback"}
        self.history(
            session,
            run,
            trigger,
            run.state,
            now=now,
            duration_ms=duration_ms,
            detail={"reason": reason, **summary},
        )
        self.finish(session, run, "failed", now=now, reason=reason, detail=detail)
        failure_task = self._registry.get(run.workflow).failure_task
        if failure_task is not None:
            self.enqueue(
                session, f"{run.workflow}.{failure_task}", kwargs={"run_id": run.id}, run_id=run.id
            )

    def halt(
        self,
        session: Session,
        run: WorkflowRun,
        status: str,
        trigger: str,
        *,
        now: datetime,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Pause or cancel the run where it stands, fencing off its pending step."""
        self.history(session, run, trigger, run.state, now=now, detail=detail)
        self.finish(session, run, status, now=now)

    def finish(
        self,
        session: Session,
        run: WorkflowRun,
        status: str,
        *,
        now: datetime,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Set a non-running status; the token bump fences off any step still in flight,
        and the run's waiting timers are dropped (they belong to the old token). A paused
        run keeps the pause and cancel it has scheduled for states ahead, and its deadline
        timer; a finished one drops it and any kept signals."""
        self._dispatcher.discard_for_run(session, run.id, steps_only=status == "paused")
        run.status = status
        run.token += 1
        run.claimed = False
        run.lease_expires_at = None
        run.pause_requested = False
        run.cancel_requested = False
        if status == "paused":
            self._metrics.incr("run.paused", tags={"workflow": run.workflow})
            return
        run.pause_at = None
        run.cancel_at = None
        run.kept_signals = None
        run.failure_reason = redact_text(reason) if reason else reason
        run.failure_detail = redact_value("failure_detail", detail) if detail else detail
        run.finished_at = now
        self._metrics.incr("run.finished", tags={"workflow": run.workflow, "status": status})


#: What a claiming statement returns: the columns ``Claim.of`` reads.
CLAIM_COLUMNS = (
    WorkflowRun.id,
    WorkflowRun.workflow,
    WorkflowRun.state,
    WorkflowRun.token,
    WorkflowRun.attempt,
    WorkflowRun.polls,
    WorkflowRun.params,
    WorkflowRun.context,
    WorkflowRun.state_entered_at,
    WorkflowRun.entry_seq,
    WorkflowRun.history_len,
)


def nothing_asked_at(state: Any) -> ColumnElement[bool]:
    """The run has no cancel or pause asked for, now or at ``state``: a claim of
    ``state``'s step may go ahead."""
    run = WorkflowRun
    return and_(
        run.cancel_requested.is_(False),
        run.pause_requested.is_(False),
        or_(run.pause_at.is_(None), run.pause_at != state),
        or_(run.cancel_at.is_(None), run.cancel_at != state),
    )


def _bound(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


@functools.cache
def _fenced_move(terminal: bool, claim_next: bool = False) -> ReturningUpdate[Any]:
    """The move of a claimed run to ``a_dest``, fenced on the claim's token; returns the
    run's id and whether ``a_dest``'s step is claimed by this worker (with
    ``claim_next``, also the columns of that claim).

    With ``claim_next``, the step is claimed (attempt 1, leased until
    ``a_claim_lease``, marked with ``a_marker``) unless the run has a pause or cancel
    asked for, as a claim would.
    """
    run = WorkflowRun
    runs = WorkflowRun.__table__.c
    moment = _bound("a_now", runs.updated_at)
    dest = _bound("a_dest", runs.state)
    lease = _bound("a_lease", runs.lease_expires_at)
    claimed: Any = False
    attempt: Any = 0
    marker: Any = None
    if claim_next:
        claimed = nothing_asked_at(dest)
        attempt = case((claimed, 1), else_=0)
        lease = case((claimed, _bound("a_claim_lease", runs.lease_expires_at)), else_=lease)
        marker = case((claimed, _bound("a_marker", runs.claim_marker)), else_=None)
    values: dict[str, Any] = {
        "state": dest,
        "attempt": attempt,
        "polls": 0,
        "token": _bound("a_new_token", runs.token),
        "claimed": claimed,
        "state_entered_at": moment,
        "entry_seq": _bound("a_seq", runs.entry_seq),
        "history_len": _bound("a_seq", runs.history_len),
        "updated_at": moment,
        "context": _bound("a_context", runs.context),
    }
    if claim_next:
        values["claim_marker"] = marker
    if terminal:
        values.update(
            status="succeeded",
            lease_expires_at=None,
            pause_requested=False,
            cancel_requested=False,
            pause_at=None,
            cancel_at=None,
            finished_at=moment,
        )
    else:
        values["lease_expires_at"] = lease
    return (
        update(run)
        .where(
            run.id == bindparam("a_run_id"),
            run.token == bindparam("a_token"),
            run.claimed.is_(True),
            run.status == "running",
        )
        .values(values)
        .returning(run.claimed, *(CLAIM_COLUMNS if claim_next else (run.id,)))
    )


def _history_values() -> dict[str, Any]:
    """The history row of a move, column by column."""
    c = WorkflowTransition.__table__.c
    return {
        "run_id": _bound("a_run_id", c.run_id),
        "seq": _bound("a_seq", c.seq),
        "from_state": _bound("a_from", c.from_state),
        "trigger": _bound("a_trigger", c.trigger),
        "to_state": _bound("a_dest", c.to_state),
        "attempt": _bound("a_attempt", c.attempt),
        "token": _bound("a_token", c.token),
        "at": _bound("a_now", c.at),
        "duration_ms": _bound("a_duration", c.duration_ms),
    }


def _outbox_values() -> dict[str, Any]:
    """The outbox row of the next step's message, column by column."""
    c = OutboxMessage.__table__.c
    return {
        "task_name": _bound("a_task", c.task_name),
        "args": literal([], c.args.type),
        "kwargs": _bound("a_kwargs", c.kwargs),
        "queue": _bound("a_queue", c.queue),
        "run_id": _bound("a_run_id", c.run_id),
        "token": _bound("a_new_token", c.token),
        "not_before": _bound("a_now", c.not_before),
        "created_at": _bound("a_now", c.created_at),
    }


@functools.cache
def _advance_in_one_statement(terminal: bool, claim_next: bool = False) -> Select[Any]:
    """PostgreSQL: the fenced move, its history row and the next outbox row (or, for a
    finished run, the removal of its waiting timers) as one statement. The outbox row
    is written only if the move did not claim the next step for this worker.

    Returns no row when fenced off; otherwise the moved run's returned columns (see
    ``_fenced_move``), the history row count and the outbox row's id."""
    moved = _fenced_move(terminal, claim_next).cte("moved")

    def from_moved(values: dict[str, Any]) -> Select[Any]:
        # the rows are inserted only if the fenced move happened
        return select(*(moved.c.id if name == "run_id" else v for name, v in values.items()))

    history_values = _history_values()
    history = (
        insert(WorkflowTransition)
        .from_select(list(history_values), from_moved(history_values))
        .returning(WorkflowTransition.id)
        .cte("history")
    )
    if terminal:
        follow = (
            delete(OutboxMessage)
            .where(OutboxMessage.run_id == bindparam("a_run_id"), OutboxMessage.token.is_not(None))
            .returning(OutboxMessage.id)
            .cte("discarded")
        )
    else:
        outbox_values = _outbox_values()
        follow = (
            insert(OutboxMessage)
            .from_select(
                list(outbox_values), from_moved(outbox_values).where(moved.c.claimed.is_(False))
            )
            .returning(OutboxMessage.id)
            .cte("outbox")
        )
    # the data-modifying CTEs run whether or not the final select reads them
    return select(
        *moved.c,
        select(func.count()).select_from(history).scalar_subquery().label("history_rows"),
        select(func.max(follow.c.id)).scalar_subquery().label("outbox_id"),
    ).select_from(moved)
