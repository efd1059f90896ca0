"""Writing what happens to a run: state, token, history row and outbox row, together.

Every method takes a locked run inside the caller's transaction; nothing here
commits, so a transition and its history and dispatch land atomically. What an
event does to the run is ``statewright.lifecycle``'s to say: ``change`` applies it and
adds the history rows it wrote; the rest here is I/O around it (the outbox, the
metrics). A run ends in one of four functions, one per kind: ``_succeeded``,
``_failed``, ``_cancelled``, ``_paused`` (the fast path's success in
``advance_claimed``).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import replace
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

from statewright import lifecycle, run_end
from statewright.config import Settings
from statewright.context import Claim
from statewright.dispatch import Dispatcher
from statewright.lifecycle import CANCELLED, FAILED, PAUSED, RUNNING, SUCCEEDED
from statewright.lifecycle.state import (
    Transition,
    claiming,
    dispatching,
    ending,
    entering,
    recording,
)
from statewright.metrics import Metrics
from statewright.models.engine import OutboxMessage, WorkflowRun, WorkflowTransition
from statewright.polls import fold_poll
from statewright.redaction import redact_text, redact_value
from statewright.registry import Registry, StepOptions, task_queue
from statewright.run_rows import apply_to, state_of

#: The events that end a run as failed; each carries a reason and the real error.
Failure = lifecycle.Fail | lifecycle.LostWorker | lifecycle.Abort | lifecycle.DeadlineFail


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
    """Applies lifecycle events to locked runs and records each one in the history."""

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

    def change(
        self,
        session: Session,
        run: WorkflowRun,
        event: lifecycle.Event,
        *,
        now: datetime,
        duration_ms: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Transition:
        """Apply ``event`` to the locked ``run`` and add the history rows it wrote (each
        with ``duration_ms`` and ``detail``); a run it ends is ended here.

        ``IllegalOperationError`` if the run's status refuses the event."""
        status = run.status
        moved = apply_to(run, event, now)
        for row in moved.records:
            session.add(
                WorkflowTransition(
                    run_id=run.id,
                    seq=row.seq,
                    from_state=row.from_state,
                    trigger=row.trigger,
                    to_state=row.to_state,
                    attempt=row.attempt,
                    token=row.token,
                    at=now,
                    duration_ms=duration_ms,
                    detail=redact_value("detail", detail) if detail else detail,
                )
            )
        if run.status != status and run.status != RUNNING:
            self._ended(session, run, event)
        return moved

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
        step, at, lease = self._due(run, now, not_before)
        self.change(session, run, lifecycle.Dispatch(lease), now=now)
        self._send(session, run, step, at)

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
        """
        step, at, lease = self._due(run, now, not_before, backoff)
        self.change(session, run, lifecycle.Redeliver(lease), now=now)
        self._send(session, run, step, at)

    def _due(
        self, run: WorkflowRun, now: datetime, not_before: datetime | None, backoff: int = 1
    ) -> tuple[StepOptions, datetime | None, datetime | None]:
        """The run's step, when its message is due and until when a worker owes it.

        A waiting state's message is its timeout timer, due when the timeout passes;
        one without a timeout sends nothing (only a signal moves it): ``None``, ``None``.
        """
        step = self._registry.step(run.workflow, run.state)
        at = not_before or now
        if step.wait is not None:
            if step.wait.timeout is None:
                return step, None, None
            at = max(now, run.state_entered_at + step.wait.timeout)
        wait = self._settings.dispatch_timeout * backoff
        return step, at, at + timedelta(seconds=wait)

    def _send(
        self, session: Session, run: WorkflowRun, step: StepOptions, at: datetime | None
    ) -> None:
        if at is None:
            return
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
        """Take a declared transition (``lifecycle.Advance``): enter ``dest``, then
        dispatch it or finish the run. Leaving a waiting state drops its timeout timer."""
        definition = self._registry.get(run.workflow)
        if definition.wait(run.state) is not None:
            self._dispatcher.discard_for_run(session, run.id, steps_only=True)
        event = lifecycle.Advance(trigger, dest, definition.is_terminal(dest))
        self.change(session, run, event, now=now, duration_ms=duration_ms, detail=detail)
        self._entered(session, run, now)

    def pass_deadline(
        self,
        session: Session,
        run: WorkflowRun,
        trigger: str,
        dest: str,
        *,
        now: datetime,
        detail: dict[str, Any],
    ) -> None:
        """The run's deadline passed where ``trigger`` leaves its state
        (``lifecycle.DeadlineMove``): its waiting messages go, and it takes ``trigger``."""
        self._dispatcher.discard_for_run(session, run.id, steps_only=True)
        terminal = self._registry.get(run.workflow).is_terminal(dest)
        event = lifecycle.DeadlineMove(trigger, dest, terminal)
        self.change(session, run, event, now=now, detail=detail)
        self._entered(session, run, now)

    def _entered(self, session: Session, run: WorkflowRun, now: datetime) -> None:
        """After a move: dispatch the state entered, unless the run finished there or it
        is a waiting state entered with a pause or cancel asked for, which applies there
        (no step will be claimed to apply it)."""
        if run.status != RUNNING:
            return
        if self._registry.get(run.workflow).wait(run.state) is not None:
            held = lifecycle.held(state_of(run), entering_wait=True)
            if held is not None:
                self.change(session, run, held, now=now)
                return
        self.dispatch(session, run, now=now)

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
        """Stay in the state and run its step again at ``not_before``: a ``retry``
        (``lifecycle.Retry``) or a ``poll`` (``lifecycle.Poll``).

        Polls in a row fold into one history row: its ``detail`` counts them (``polls``)
        and keeps the first one's time (``first_at``); its ``at`` is the latest one's.
        """
        event: lifecycle.Event = lifecycle.Retry()
        if trigger == "poll":
            folded = fold_poll(session, run, now, duration_ms, detail)
            if not folded:
                detail = {**(detail or {}), "polls": 1, "first_at": now.isoformat()}
            event = lifecycle.Poll(folded=folded)
        self.change(session, run, event, now=now, duration_ms=duration_ms, detail=detail)
        self.dispatch(session, run, now=now, not_before=not_before)

    def hand_back(self, session: Session, run: WorkflowRun, *, now: datetime) -> None:
        """A claimed step that never started goes back as a message, its attempt not
        counted (``lifecycle.HandBack``)."""
        self.change(session, run, lifecycle.HandBack(), now=now)
        self.dispatch(session, run, now=now)

    def fail(
        self,
        session: Session,
        run: WorkflowRun,
        failure: Failure,
        *,
        now: datetime,
        duration_ms: float | None = None,
    ) -> None:
        """End the run as failed, keeping the readable reason beside the real error."""
        summary = {k: v for k, v in failure.detail.items() if k != "traceback"}
        row = {"reason": failure.reason, **summary}
        kept = replace(
            failure,
            reason=redact_text(failure.reason) if failure.reason else failure.reason,
            detail=redact_value("failure_detail", failure.detail)
            if failure.detail
            else failure.detail,
        )
        self.change(session, run, kept, now=now, duration_ms=duration_ms, detail=row)

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
            run_end.claimed_run_succeeded(
                session, self._registry.get(claim.workflow), claim, dest, context
            )
            self._count_end(claim.workflow, SUCCEEDED)  # the fast path's end of a run
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

    # -- the ends of a run: one function per kind --

    def _ended(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        """A run just stopped: its messages of the old token go, and it is counted."""
        ends = {
            SUCCEEDED: self._succeeded,
            FAILED: self._failed,
            CANCELLED: self._cancelled,
            PAUSED: self._paused,
        }
        ends[run.status](session, run, event)

    def _succeeded(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        self._dispatcher.discard_for_run(session, run.id)
        self._count_end(run.workflow, SUCCEEDED)
        run_end.run_ended(session, self._registry.get(run.workflow), run, "succeeded")

    def _failed(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        self._dispatcher.discard_for_run(session, run.id)
        self._count_end(run.workflow, FAILED)
        ending = "aborted" if isinstance(event, lifecycle.Abort) else "failed"
        run_end.run_ended(session, self._registry.get(run.workflow), run, ending)
        failure_task = self._registry.get(run.workflow).failure_task
        if failure_task is not None:
            self.enqueue(
                session, f"{run.workflow}.{failure_task}", kwargs={"run_id": run.id}, run_id=run.id
            )

    def _cancelled(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        self._dispatcher.discard_for_run(session, run.id)
        self._count_end(run.workflow, CANCELLED)
        run_end.run_ended(session, self._registry.get(run.workflow), run, "cancelled")

    def _paused(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        """A paused run keeps its deadline timer (and what it scheduled ahead)."""
        self._dispatcher.discard_for_run(session, run.id, steps_only=True)
        self._metrics.incr("run.paused", tags={"workflow": run.workflow})

    def _count_end(self, workflow: str, status: str) -> None:
        self._metrics.incr("run.finished", tags={"workflow": workflow, "status": status})


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


#: Columns ``ending`` clears that a claimed running run never has set.
_UNSET_WHILE_RUNNING = frozenset({"failure_reason", "failure_detail", "kept_signals"})


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
    token = _bound("a_new_token", runs.token)
    values: dict[str, Any] = {
        **recording(_bound("a_seq", runs.history_len), moment),
        **entering(dest, moment, _bound("a_seq", runs.entry_seq)),
        "context": _bound("a_context", runs.context),
    }
    if terminal:
        ended = ending(SUCCEEDED, moment, token)
        # a claimed running run has no failure and no kept signals: left as they are
        values.update({k: v for k, v in ended.items() if k not in _UNSET_WHILE_RUNNING})
    else:
        values.update(dispatching(token, _bound("a_lease", runs.lease_expires_at)))
    if claim_next:
        # claimed (lifecycle.Claim) where nothing is asked at dest (the SQL form of
        # lifecycle.held), else dispatched as above
        claimed = nothing_asked_at(dest)
        claim = claiming(values["attempt"], _bound("a_claim_lease", runs.lease_expires_at))
        values.update(
            claimed=claimed,
            attempt=case((claimed, claim["attempt"]), else_=values["attempt"]),
            lease_expires_at=case(
                (claimed, claim["lease_expires_at"]), else_=values["lease_expires_at"]
            ),
            claim_marker=case((claimed, _bound("a_marker", runs.claim_marker)), else_=None),
        )
    return (
        update(run)
        .where(
            run.id == bindparam("a_run_id"),
            run.token == bindparam("a_token"),
            run.claimed.is_(True),
            run.status == RUNNING,  # lifecycle.Advance.allowed
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
