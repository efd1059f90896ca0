"""Continuing a run in process: after a step advances, the same delivery may claim and
run the run's next step without a message.

Only a step on the same queue and silo (where this worker would have received its
message anyway), within the delivery's ``continue_for`` and its time limits. Its
claim commits with the move before it; whatever goes wrong before its handler starts
hands it back as a message, so it never waits for its lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.claim import still_ours
from statewright.clock import Clock, Monotonic, system_monotonic
from statewright.config import Settings
from statewright.context import Claim
from statewright.decide import Advance
from statewright.fairness import FairContinuation
from statewright.instrumentation import HARD_LIMIT_MARGIN
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database
from statewright.recorder import RunRecorder
from statewright.registry import Registry, StepOptions
from statewright.step_events import StepCompleted, StepContinued, StepObserver

log = structlog.get_logger("statewright.execution")

#: Seconds a delivery keeps in hand for the time its task spent before ``run_step``.
START_SLACK = 0.05


@dataclass(frozen=True, slots=True)
class DeliveryWindow:
    """One message's task: when it began and when its soft time limit falls, in the
    seconds of ``monotonic`` (the engine's injected source)."""

    started: float
    soft_deadline: float
    #: What the step tasks' time limits add to each step's own.
    registered: float
    continue_for: float
    monotonic: Monotonic = system_monotonic

    @classmethod
    def starting(
        cls,
        step: StepOptions,
        registered: float,
        continue_for: float,
        monotonic: Monotonic = system_monotonic,
    ) -> DeliveryWindow:
        """A delivery of ``step``, whose task's limits are its own plus ``registered``."""
        now = monotonic()
        return cls(now, now + step.time_limit + registered, registered, continue_for, monotonic)

    def time_left_for(self, step: StepOptions) -> float | None:
        """Seconds left before the soft limit if ``step`` may run on in this delivery:
        within ``continue_for`` of its start, with at least the step's own time limit
        left and at most what the task limits add more. Otherwise ``None``.

        The pool's clock for the limit started a little before this delivery's (when
        it took the message), so the step's limit must fit with ``START_SLACK`` to spare.
        """
        now = self.monotonic()
        left = self.soft_deadline - now
        if now - self.started > self.continue_for:
            return None
        if not step.time_limit + START_SLACK <= left <= step.time_limit + self.registered:
            return None
        return left


@dataclass(frozen=True, slots=True)
class Continued:
    """A step that completed by claiming the next one, and that next step."""

    finished: StepOptions
    decision: Advance
    duration_ms: float
    step: StepOptions
    claim: Claim


class Continuation:
    """Decides which step a delivery goes on to, and hands back one it cannot run."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        settings: Settings,
        clock: Clock,
        observers: StepObserver,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._settings = settings
        self._clock = clock
        self._observers = observers
        #: Whether a delivery may run one more step of its run while other messages wait
        #: (``statewright.fairness``); ``None`` continues within ``continue_for`` alone.
        self.fairness: FairContinuation | None = None

    def next_step(
        self, step: StepOptions, dest: str, window: DeliveryWindow | None, now: datetime
    ) -> tuple[StepOptions | None, datetime | None]:
        """The step this delivery goes on to after entering ``dest``, and its lease.

        The lease outlasts the delivery's hard limit, as a claim's lease outlasts its
        message's.
        """
        if window is None or self._registry.get(step.workflow).is_terminal(dest):
            return None, None
        following = self._registry.step(step.workflow, dest)
        if following.queue != step.queue or following.silo_mode != step.silo_mode:
            return None, None
        left = window.time_left_for(following)
        if left is None:
            return None, None
        if self.fairness is not None and not self.fairness.allows(step.queue, window.started):
            return None, None
        seconds = left + HARD_LIMIT_MARGIN + self._settings.lease_grace
        return following, now + timedelta(seconds=seconds)

    def go_on(
        self, continued: Continued, window: DeliveryWindow
    ) -> tuple[StepOptions, Claim] | None:
        """After the commit that claimed the next step: run it, unless the commit took
        the time it needed. Whatever goes wrong before its handler starts hands the
        claim back as a message, so the step never waits for its lease."""
        step, claim = continued.step, continued.claim
        try:
            finished, decision = continued.finished, continued.decision
            self._observers.completed(
                StepCompleted(finished, decision.trigger, decision.dest, continued.duration_ms)
            )
            if window.time_left_for(step) is None:
                self.hand_back(step, claim, "the delivery has no time left for it")
                return None
            self._observers.continued(StepContinued(step))
        except Exception as error:
            self.hand_back(step, claim, repr(error))
            raise
        return step, claim

    def hand_back(self, step: StepOptions, claim: Claim, why: str) -> None:
        """Give up a continued step that never started: dispatch it as a message (under
        a new token, its attempt not counted) if the run still stands as claimed."""
        try:
            with self._db.transaction() as session:
                run = self._db.runs.lock(session, claim.run_id)
                if not still_ours(run, claim):
                    return
                assert run is not None
                self._recorder.hand_back(session, run, now=self._clock.now())
        except Exception as error:  # its lease still recovers it
            log.warning("continued step not handed back", why=why, error=repr(error))
            return
        log.info("continued step handed back as a message", why=why, state=step.state)

    def send_claimed_successor(self, session: Session, run: WorkflowRun, claim: Claim) -> bool:
        """If ``claim``'s completing commit landed though it raised, claiming the next
        step for a handler that will not run, send that step as a message; whether so."""
        if not continued_by(run, claim):
            return False
        self._recorder.hand_back(session, run, now=self._clock.now())
        log.warning("step completed though its commit raised; next step dispatched")
        return True


def continued_by(run: WorkflowRun, claim: Claim) -> bool:
    """Whether the run stands as ``claim``'s own move left it, having claimed the next
    step: one token on, claimed, and carrying the marker only that move could write.

    The rest of the row cannot tell: a signal that moved the run along the same edge,
    followed by another worker's claim, leaves the same state, token and attempt."""
    return (
        run.status == lifecycle.RUNNING
        and run.claimed
        and run.token == claim.token + 1
        and run.claim_marker == claim.successor_marker
    )


__all__ = ["START_SLACK", "Continuation", "Continued", "DeliveryWindow", "continued_by"]
