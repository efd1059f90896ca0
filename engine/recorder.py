"""Writing what happens to a run: state, token, history row and outbox row, together.

Every method takes a locked run inside the caller's transaction; nothing here
commits, so a transition and its history and dispatch land atomically.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from statewright.config import Settings
from statewright.context import Claim
from statewright.dispatch import Dispatcher
from statewright.metrics import Metrics
from statewright.models.engine import WorkflowRun, WorkflowTransition
from statewright.polls import fold_poll
from statewright.redaction import redact_text, redact_value
from statewright.registry import Registry, StepOptions, task_queue
from statewright.stores import RunStore


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
        *,
        store: RunStore,
    ) -> None:
        self._registry = registry
        #: The run table's statements, as the engine's database runs them.
        self._store = store
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
        ``UPDATE`` (running, claimed, under the claim's token) and the inserts of its
        history and outbox rows, run by the run store (on PostgreSQL as one statement).

        With ``claim_lease``, the ``UPDATE`` claims ``dest``'s step for this worker
        (attempt 1, leased until ``claim_lease``) instead of dispatching it, unless a
        pause or cancel is asked for (its message then applies it); a claimed next step
        comes back with its claim. While a claim is ours nothing but the pause and
        cancel flags can change the run (every other move bumps the token), so the
        claim is the run as it stands.
        """
        terminal = self._registry.get(claim.workflow).is_terminal(dest)
        step = None if terminal else self._registry.step(claim.workflow, dest)
        claim_next = claim_lease is not None and not terminal
        params = _move_values(claim, trigger, dest, context, now, duration_ms)
        if step is not None:
            lease = now + timedelta(seconds=self._settings.dispatch_timeout)
            params.update(_dispatch_values(step, claim, lease))
        if claim_next:
            params.update(a_claim_lease=claim_lease, a_marker=claim.successor_marker)
        moved = self._store.advance(session, params, terminal=terminal, claim_next=claim_next)
        if moved is None:
            return Advanced.FENCED, None
        if step is None:
            self._metrics.incr(
                "run.finished", tags={"workflow": claim.workflow, "status": "succeeded"}
            )
            return Advanced.FINISHED, None
        if moved.claimed:
            return Advanced.CLAIMED, Claim.of(moved.row)
        assert moved.outbox_id is not None
        self._dispatcher.committed_message(
            session,
            step.task_name,
            outbox_id=moved.outbox_id,
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


def _move_values(
    claim: Claim,
    trigger: str,
    dest: str,
    context: dict[str, Any],
    now: datetime,
    duration_ms: float,
) -> dict[str, Any]:
    """What the statements of a claimed run's move to ``dest`` bind (see
    ``statewright.stores.statements``): the run's new values and its history row's."""
    return {
        "a_run_id": claim.run_id,
        "a_token": claim.token,
        "a_new_token": claim.token + 1,
        "a_dest": dest,
        "a_seq": claim.history_len + 1,
        "a_now": now,
        "a_context": context,
        "a_from": claim.state,
        "a_trigger": trigger,
        "a_attempt": claim.attempt,
        "a_duration": duration_ms,
    }


def _dispatch_values(step: StepOptions, claim: Claim, lease: datetime) -> dict[str, Any]:
    """What the outbox row of the next step's message binds (its lease if dispatched)."""
    return {
        "a_lease": lease,
        "a_task": step.task_name,
        "a_kwargs": {"run_id": claim.run_id, "token": claim.token + 1},
        "a_queue": step.queue,
    }
