"""Claiming a step (a short transaction of its own): lock the run, check the message is
current, count the attempt and set a lease.

A message for a run that is gone, finished, elsewhere, or carrying an old token is
dropped. A pause or cancel scheduled for the state applies here. A claim past the
last attempt fails the run ("worker lost"). The claim commits before the handler
runs, so a crash mid-step still counts as an attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.clock import Clock
from statewright.config import Settings
from statewright.context import Claim
from statewright.decide import RunView, decide_lost_worker
from statewright.instrumentation import HARD_LIMIT_MARGIN
from statewright.models.engine import WorkflowRun
from statewright.recorder import RunRecorder
from statewright.registry import StepOptions
from statewright.run_rows import state_of
from statewright.step_events import StepDropped, StepFailed, StepObserver
from statewright.stores import RunStore, StepConnection

log = structlog.get_logger("statewright.execution")


class StepClaimer:
    """Takes steps for this worker, or says why a message has nothing to do."""

    def __init__(
        self,
        store: RunStore,
        recorder: RunRecorder,
        settings: Settings,
        clock: Clock,
        observers: StepObserver,
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._settings = settings
        self._clock = clock
        self._observers = observers

    def claim(
        self, connection: StepConnection, step: StepOptions, run_id: str, token: int
    ) -> Claim | None:
        """Take the step, or drop the message and say why.

        The common case is one ``UPDATE … RETURNING``: the run is current, unclaimed,
        with no pause or cancel scheduled and attempts left. Anything else takes the
        slow path, which locks the row and says why.
        """
        params = {
            "claim_run_id": run_id,
            "claim_token": token,
            "claim_workflow": step.workflow,
            "claim_state": step.state,
            "claim_max_attempts": step.retry.max_attempts,
            "claim_lease": self.lease(step, self._clock.now()),
        }

        def locked(session: Session) -> Claim | None:
            return self._claim_locked(session, step, run_id, token)

        return connection.claim(params, Claim.of, locked)

    def lease(self, step: StepOptions, now: datetime) -> datetime:
        """When a claimed step counts as lost: past its delivery's hard time limit (the
        step's own plus ``continue_for``) and the grace."""
        limit = step.time_limit + self._settings.continue_for
        seconds = limit + HARD_LIMIT_MARGIN + self._settings.lease_grace
        return now + timedelta(seconds=seconds)

    def _claim_locked(
        self, session: Session, step: StepOptions, run_id: str, token: int
    ) -> Claim | None:
        """The slow path: lock the run and take the step, or say why not."""
        run = self._store.lock(session, run_id)
        stale = stale_reason(run, step, token)
        if stale is not None:
            self._observers.dropped(StepDropped(step, stale))
            return None
        assert run is not None
        now = self._clock.now()
        held = lifecycle.held(state_of(run))  # a scheduled cancel or pause applies here
        if held is not None:
            self._recorder.change(session, run, held, now=now)
            cancelled = run.status == lifecycle.CANCELLED
            log.info(
                "run cancelled at step boundary" if cancelled else "run paused at step boundary"
            )
            return None
        counted = RunView(run.state, run.attempt + 1, run.polls, run.state_entered_at)
        lost = decide_lost_worker(step, counted)
        if lost is not None:
            lost_worker = lifecycle.LostWorker(lost.reason, lost.detail)
            self._recorder.fail(session, run, lost_worker, now=now)
            self._observers.failed(StepFailed(step, lost.reason, lost.detail, worker_lost=True))
            return None
        self._recorder.change(session, run, lifecycle.Claim(self.lease(step, now)), now=now)
        return Claim.of(run)


def stale_reason(run: WorkflowRun | None, step: StepOptions, token: int) -> str | None:
    """Why a message for ``step`` under ``token`` has nothing to do, if it has not."""
    if run is None:
        return "run_gone"
    if not lifecycle.allowed(lifecycle.Claim, run.status):
        return "not_running"
    if run.workflow != step.workflow or run.state != step.state or run.token != token:
        return "stale_token"
    if run.claimed:
        return "duplicate"
    return None


def still_ours(run: WorkflowRun | None, claim: Claim) -> bool:
    """Whether ``run`` still stands as ``claim`` took it (nothing moved it since)."""
    return (
        run is not None
        and run.status == lifecycle.RUNNING
        and run.claimed
        and run.token == claim.token
    )


def run_view(run: WorkflowRun) -> RunView:
    """What deciding a step's outcome reads of a locked run."""
    return RunView(run.state, run.attempt, run.polls, run.state_entered_at)


def claim_view(claim: Claim) -> RunView:
    """The run as its claim saw it: while the claim is ours, only its flags can change."""
    return RunView(claim.state, claim.attempt, claim.polls, claim.state_entered_at)


__all__ = ["StepClaimer", "claim_view", "run_view", "stale_reason", "still_ours"]
