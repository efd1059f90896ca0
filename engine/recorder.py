"""Writing what happens to a run: state, token, history row and outbox row, together.

Every method takes a locked run inside the caller's transaction; nothing here
commits, so a transition and its history and dispatch land atomically. What an
event does to the run is ``statewright.lifecycle``'s to say: ``change`` applies it and
adds the history rows it wrote; the rest here is I/O around it (the outbox, the
metrics). A run ends in one of four functions, one per kind, in
``statewright.run_endings`` (the fast path's success too, from ``advance_claimed``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.config import Settings
from statewright.context import Claim
from statewright.dispatch import Dispatcher
from statewright.lifecycle import RUNNING
from statewright.lifecycle.state import (
    Transition,
)
from statewright.metrics import Metrics
from statewright.models.engine import WorkflowRun, WorkflowTransition
from statewright.polls import fold_poll
from statewright.redaction import redact_text, redact_value
from statewright.registry import Registry, StepOptions, task_queue
from statewright.run_endings import RunEndings
from statewright.run_rows import apply_to, state_of
from statewright.stores import RunStore
from statewright.stores.statements import dispatch_values, move_values

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
        #: How each kind of end is carried out (``statewright.run_endings``).
        self._endings = RunEndings(registry, dispatcher, metrics, self.enqueue)

    @property
    def children(self) -> Any:
        """Child runs and Maps (``statewright.children.Children``), set by the engine: holds
        a join or Map state's step until its children are done, counts finished runs."""
        return self._endings.children

    @children.setter
    def children(self, children: Any) -> None:
        self._endings.children = children

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
            self._endings.ended(session, run, event)
        return moved

    def enqueue(
        self,
        session: Session,
        task_name: str,
        *,
        kwargs: dict[str, Any],
        run_id: str | None = None,
        queue: str | None = None,
    ) -> None:
        """Dispatch a task after ``session`` commits, on its own queue (or ``queue``); its
        outbox row stays until the task finishes (see ``statewright.deliveries``)."""
        queue = queue or self._task_queue(task_name)
        self._dispatcher.enqueue(session, task_name, kwargs=kwargs, queue=queue, run_id=run_id)

    def _task_queue(self, task_name: str) -> str:
        found = self._registry.task_spec(task_name)
        if found is not None:
            return task_queue(*found, self._settings.default_queue)
        if self._queue_of is not None:
            return self._queue_of(task_name)
        return self._settings.default_queue

    def dispatch(
        self,
        session: Session,
        run: WorkflowRun,
        *,
        now: datetime,
        not_before: datetime | None = None,
    ) -> None:
        """Send the current state's step under a new token; unclaimed until a worker claims it."""
        step, at, lease = self._due(session, run, now, not_before)
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
        step, at, lease = self._due(session, run, now, not_before, backoff)
        self.change(session, run, lifecycle.Redeliver(lease), now=now)
        self._send(session, run, step, at)

    def _due(
        self,
        session: Session,
        run: WorkflowRun,
        now: datetime,
        not_before: datetime | None,
        backoff: int = 1,
    ) -> tuple[StepOptions, datetime | None, datetime | None]:
        """The run's step, when its message is due and until when a worker owes it.

        A waiting state's message is its timeout timer, due when the timeout passes;
        one without a timeout sends nothing (only a signal moves it): ``None``, ``None``.
        So does a join or Map state whose children (or items) are not all done: the
        last one to finish dispatches its step.
        """
        step = self._registry.step(run.workflow, run.state)
        if (
            (step.join or step.map is not None)
            and self.children is not None
            and self.children.holds(session, run, step)
        ):
            return step, None, None
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
        """After a move: dispatch the state entered, unless the run finished there or a
        pause or cancel applies on entering it (``_held_here``)."""
        if run.status != RUNNING:
            return
        if not self._held_here(session, run, now):
            self.dispatch(session, run, now=now)

    def hold(self, session: Session, run: WorkflowRun, *, now: datetime) -> bool:
        """For a run standing unclaimed in its state (an operator scheduled something at
        it, or resumed it): apply what ``_held_here`` applies; whether it did."""
        return not run.claimed and self._held_here(session, run, now)

    def _held_here(self, session: Session, run: WorkflowRun, now: datetime) -> bool:
        """Apply a pause or cancel asked for now or at the run's state (``lifecycle.held``)
        if the run is running in a state that may wait with no step message (a waiting,
        join or Map state), where no claim would come to apply it; whether one applied.
        In a step state, the claim applies it."""
        if run.status != RUNNING or not self._registry.get(run.workflow).holds(run.state):
            return False
        held = lifecycle.held(state_of(run))
        if held is None:
            return False
        self.change(session, run, held, now=now)
        return True

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
        params = move_values(claim, trigger, dest, context, now, duration_ms)
        if step is not None:
            lease = now + timedelta(seconds=self._settings.dispatch_timeout)
            params.update(dispatch_values(step, claim, lease))
        if claim_next:
            params.update(a_claim_lease=claim_lease, a_marker=claim.successor_marker)
        moved = self._store.advance(session, params, terminal=terminal, claim_next=claim_next)
        if moved is None:
            return Advanced.FENCED, None
        if step is None:
            self._endings.claimed_succeeded(session, claim, dest, context)
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
