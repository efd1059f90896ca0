"""Writing what happens to a run: state, token, history row and outbox row, together.

Every method takes a locked run inside the caller's transaction; nothing here
commits, so a transition and its history and dispatch land atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from engine.config import Settings
from engine.dispatch import Dispatcher
from engine.metrics import Metrics
from engine.registry import Registry
from models.engine import WorkflowRun, WorkflowTransition


class RunRecorder:
    """Applies moves to locked runs and records each one in the history."""

    def __init__(
        self, registry: Registry, dispatcher: Dispatcher, settings: Settings, metrics: Metrics
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._settings = settings
        self._metrics = metrics

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
                detail=detail,
            )
        )
        return run.history_len

    def enqueue(self, session: Session, task_name: str, *, kwargs: dict[str, Any]) -> None:
        """Dispatch a workflow task after ``session`` commits, on its own queue."""
        owner, _, name = task_name.partition(".")
        spec = self._registry.task_owner(owner).tasks.get(name)
        queue = (spec.queue if spec else None) or self._settings.default_queue
        self._dispatcher.enqueue(session, task_name, kwargs=kwargs, queue=queue)

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
    ) -> None:
        """Send the current step's message again under the same token (a lost delivery).

        If both copies arrive, the second finds the step claimed and is dropped.
        """
        step = self._registry.step(run.workflow, run.state)
        at = not_before or now
        run.lease_expires_at = at + timedelta(seconds=self._settings.dispatch_timeout)
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
        """Take a declared transition: enter ``dest``, then dispatch it or finish the run."""
        seq = self.history(
            session, run, trigger, dest, now=now, duration_ms=duration_ms, detail=detail
        )
        run.state = dest
        run.attempt = 0
        run.polls = 0
        run.state_entered_at = now
        run.entry_seq = seq
        if self._registry.get(run.workflow).is_terminal(dest):
            self.finish(session, run, "succeeded", now=now)
        else:
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
        """Stay in the state and run its step again at ``not_before`` (a retry or a poll)."""
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
            self.enqueue(session, f"{run.workflow}.{failure_task}", kwargs={"run_id": run.id})

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
        and the run's waiting timers are dropped (they belong to the old token)."""
        self._dispatcher.discard_for_run(session, run.id)
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
        run.failure_reason = reason
        run.failure_detail = detail
        run.finished_at = now
        self._metrics.incr("run.finished", tags={"workflow": run.workflow, "status": status})
