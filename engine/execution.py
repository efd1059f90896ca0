"""Executing a step: claim (short transaction), execute, complete (one transaction).

1. ``StepClaimer`` (``statewright.claim``) locks the run and checks the message is
   current, counts the attempt and sets a lease, and commits.
2. The handler runs with a session for its domain writes.
3. ``_complete`` re-locks the run in the handler's own transaction and checks the
   token is still ours; the outcome, domain writes, history and next dispatch
   commit together. On error, domain writes roll back and the retry or failure is
   recorded in a fresh transaction.
4. When the step advances, the delivery may go on to the run's next step
   (``statewright.continuation``): its claim commits with the move, and no message is sent.

What happens is told to observers (``statewright.step_events``): metrics, logs and Sentry
are observers in ``statewright.hooks``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.claim import StepClaimer, claim_view, run_view, still_ours
from statewright.clock import Clock, Monotonic, system_monotonic
from statewright.config import Settings
from statewright.context import Claim, StepContext
from statewright.continuation import Continuation, Continued, DeliveryWindow
from statewright.decide import (
    Advance,
    Decision,
    FailRun,
    PollAgain,
    RetryLater,
    decide_error,
    decide_outcome,
    error_detail,
)
from statewright.errors import InvalidParamsError
from statewright.instrumentation import bind_step
from statewright.jsonvalues import check_json_object
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database
from statewright.recorder import Advanced, RunRecorder
from statewright.registry import Registry, StepOptions
from statewright.step_events import (
    StepClaimed,
    StepCompleted,
    StepDropped,
    StepFailed,
    StepObservers,
    StepPolled,
    StepRetried,
)
from statewright.step_session import handler_running, misuse_of
from statewright.stores import StepConnection

#: The step a delivery goes on to, and its claim.
_Next = tuple[StepOptions, Claim]


class StepExecutor:
    """Runs one step message through claim, handler and completion."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        observers: StepObservers,
        monotonic: Monotonic = system_monotonic,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._settings = settings
        self._clock = clock
        self._rng = rng
        #: The seconds a delivery measures its time limits on (the engine's source).
        self._monotonic = monotonic
        #: Told what happens to each step (see ``statewright.step_events``).
        self.observers = observers
        self.claimer = StepClaimer(db.runs, recorder, settings, clock, observers)
        self.continuation = Continuation(db, registry, recorder, settings, clock, observers)
        #: How long a delivery may go on to its run's next steps; the settings' value,
        #: which the step tasks' time limits include (the test harness sets 0).
        self.continue_for = settings.continue_for

    def run_step(self, step: StepOptions, run_id: str, token: int) -> None:
        """Handle one delivery of ``step``'s message for ``run_id`` under ``token``.

        When the step advances, the delivery may go on to the run's next step in this
        process (see ``statewright.continuation``): its claim commits with the move, and no
        message is sent for it.
        """
        bind_step(workflow=step.workflow, run=run_id, state=step.state, token=token)
        window = DeliveryWindow.starting(
            step, self._settings.continue_for, self.continue_for, self._monotonic
        )
        with self._db.runs.delivery() as connection:
            claim = self.claimer.claim(connection, step, run_id, token)
            while claim is not None:
                following = self._execute(connection, step, claim, window)
                if following is None:
                    return
                step, claim = following

    def claim_step(self, step: StepOptions, run_id: str, token: int) -> Claim | None:
        """Claim ``step`` for ``run_id`` under ``token`` (a delivery that stops there)."""
        with self._db.runs.delivery() as connection:
            return self.claimer.claim(connection, step, run_id, token)

    def execute(self, step: StepOptions, claim: Claim) -> None:
        """Run the handler of a claimed step and complete it (or record its error)."""
        with self._db.runs.delivery() as connection:
            self._execute(connection, step, claim, None)

    def _execute(
        self,
        connection: StepConnection,
        step: StepOptions,
        claim: Claim,
        window: DeliveryWindow | None,
    ) -> _Next | None:
        """Run a claimed step's handler and complete it (or record its error); returns
        the next step and its claim when the run continues in this delivery."""
        bind_step(state=step.state, token=claim.token, attempt=claim.attempt)
        session = connection.session()
        started = time.perf_counter()
        try:
            context = StepContext.for_claim(
                claim, session, self._clock.now(), self._recorder.enqueue, self._recorder.children
            )
            self.observers.claimed(StepClaimed(step, claim))
            with handler_running(session, step.state):
                outcome = step.handler(context)
            misuse = misuse_of(session, step.state)
            if misuse is not None:
                raise misuse  # even if the handler caught the refusal and went on
            continued = self._complete(
                step, claim, session, outcome, context.context, started, window
            )
        except Exception as error:
            session.rollback()
            failure = misuse_of(session, step.state) or error
            self._record_error(step, claim, failure, _elapsed_ms(started))
            return None
        finally:
            session.close()
        if continued is None or window is None:
            return None
        return self.continuation.go_on(continued, window)

    def _complete(
        self,
        step: StepOptions,
        claim: Claim,
        session: Session,
        outcome: object,
        context: dict[str, object],
        started: float,
        window: DeliveryWindow | None,
    ) -> Continued | None:
        now = self._clock.now()
        definition = self._registry.get(step.workflow)
        decision = decide_outcome(definition, step, claim_view(claim), outcome, now)
        # entering a waiting state arms its timer (or applies a pause) on the locked run
        if isinstance(decision, Advance) and not definition.holds(decision.dest):
            try:
                saved = check_json_object(context, "the run context")
            except InvalidParamsError:
                pass  # the locked path below fails the run and says why
            else:
                return self._advance(step, claim, session, decision, saved, now, started, window)
        self._complete_locked(step, claim, session, outcome, context, now, started)
        return None

    def _advance(
        self,
        step: StepOptions,
        claim: Claim,
        session: Session,
        decision: Advance,
        saved: dict[str, object],
        now: datetime,
        started: float,
        window: DeliveryWindow | None,
    ) -> Continued | None:
        """The common completion: one fenced move of the claimed run, which may claim
        the next step for this delivery."""
        duration_ms = _elapsed_ms(started)
        following, lease = self.continuation.next_step(step, decision.dest, window, now)
        advanced, next_claim = self._recorder.advance_claimed(
            session, claim, decision.trigger, decision.dest, saved, now, duration_ms,
            claim_lease=lease,
        )  # fmt: skip
        if advanced is Advanced.FENCED:
            session.rollback()
            self.observers.dropped(StepDropped(step, "fenced"))
            return None
        session.commit()
        if advanced is Advanced.CLAIMED:
            assert following is not None
            assert next_claim is not None
            return Continued(step, decision, duration_ms, following, next_claim)
        self.observers.completed(StepCompleted(step, decision.trigger, decision.dest, duration_ms))
        return None

    def _complete_locked(
        self,
        step: StepOptions,
        claim: Claim,
        session: Session,
        outcome: object,
        context: dict[str, object],
        now: datetime,
        started: float,
    ) -> None:
        """Complete on the locked run: entering a waiting state, a poll, a context that
        is not JSON, or an outcome that fails or retries the step."""
        run = self._db.runs.lock(session, claim.run_id)
        if not still_ours(run, claim):
            session.rollback()
            self.observers.dropped(StepDropped(step, "fenced"))
            return
        assert run is not None
        definition = self._registry.get(step.workflow)
        decision = decide_outcome(definition, step, run_view(run), outcome, now)
        try:
            run.context = check_json_object(context, "the run context")
        except InvalidParamsError as error:
            decision = FailRun(
                f"{step.reason} (the step left a context that is not JSON: {error})",
                error_detail(error),
            )
        if isinstance(decision, FailRun | RetryLater):
            session.rollback()  # the step failed: its domain writes must not land
            failed: Decision = decision
            self._record_failure(step, claim, lambda _run: failed, _elapsed_ms(started))
            return
        self._apply(session, step, run, decision, now, _elapsed_ms(started))
        session.commit()

    def _apply(
        self,
        session: Session,
        step: StepOptions,
        run: WorkflowRun,
        decision: Decision,
        now: datetime,
        duration_ms: float,
    ) -> None:
        if isinstance(decision, Advance):
            self._recorder.move(
                session, run, decision.trigger, decision.dest, now=now, duration_ms=duration_ms
            )
            self.observers.completed(
                StepCompleted(step, decision.trigger, decision.dest, duration_ms)
            )
        elif isinstance(decision, PollAgain):
            self._recorder.repeat(
                session,
                run,
                "poll",
                now=now,
                not_before=decision.not_before,
                duration_ms=duration_ms,
                detail={"not_before": decision.not_before.isoformat()},
            )
            self.observers.polled(StepPolled(step, decision.not_before))

    def _record_error(
        self, step: StepOptions, claim: Claim, error: Exception, duration_ms: float
    ) -> None:
        def decide(run: WorkflowRun) -> Decision:
            return decide_error(step, run_view(run), error, self._clock.now(), self._rng)

        self._record_failure(step, claim, decide, duration_ms, error)

    def _record_failure(
        self,
        step: StepOptions,
        claim: Claim,
        decide: Callable[[WorkflowRun], Decision],
        duration_ms: float,
        error: Exception | None = None,
    ) -> None:
        """In a fresh transaction (the step's own was rolled back): re-lock the run, check
        the step is still ours, and record the retry or the failure."""
        with self._db.transaction() as session:
            run = self._db.runs.lock(session, claim.run_id)
            if not still_ours(run, claim):
                if run is not None:
                    self.continuation.send_claimed_successor(session, run, claim)
                self.observers.dropped(StepDropped(step, "fenced"))
                return
            assert run is not None
            decision = decide(run)
            self._write_failure(session, run, decision, duration_ms)
        if isinstance(decision, RetryLater):
            self.observers.retried(StepRetried(step, decision.not_before, decision.detail))
        elif isinstance(decision, FailRun):
            self.observers.failed(StepFailed(step, decision.reason, decision.detail, error))

    def _write_failure(
        self, session: Session, run: WorkflowRun, decision: Decision, duration_ms: float
    ) -> None:
        now = self._clock.now()
        if isinstance(decision, RetryLater):
            detail = {k: v for k, v in decision.detail.items() if k != "traceback"}
            detail["not_before"] = decision.not_before.isoformat()
            self._recorder.repeat(
                session,
                run,
                "retry",
                now=now,
                not_before=decision.not_before,
                duration_ms=duration_ms,
                detail=detail,
            )
        elif isinstance(decision, FailRun):
            failure = lifecycle.Fail(decision.reason, decision.detail)
            self._recorder.fail(session, run, failure, now=now, duration_ms=duration_ms)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


__all__ = ["StepExecutor", "error_detail"]
