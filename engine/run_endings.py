"""A run stopping, as the recorder writes it: one function per kind of end.

A run that succeeds, fails or is cancelled loses its messages of the old token, is
counted, calls its workflow's ``on_end`` hooks (``statewright.run_end``) and counts in
its parent's join or Map; a failed run also enqueues its workflow's failure task. A
paused run keeps its deadline timer (and what it scheduled ahead). ``RunRecorder``
calls ``ended`` when an event stops a run, and ``claimed_succeeded`` for the fast
path's success (``advance_claimed``), which does not load the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from statewright import lifecycle, run_end
from statewright.context import Claim
from statewright.dispatch import Dispatcher
from statewright.lifecycle import CANCELLED, FAILED, PAUSED, SUCCEEDED
from statewright.metrics import Metrics
from statewright.models.engine import WorkflowRun
from statewright.registry import Registry


class RunEndings:
    """Carries out the end of a run inside the transaction that records it."""

    def __init__(
        self,
        registry: Registry,
        dispatcher: Dispatcher,
        metrics: Metrics,
        enqueue: Callable[..., None],
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._metrics = metrics
        #: ``RunRecorder.enqueue``: the failure task goes on its own queue.
        self._enqueue = enqueue
        #: Child runs and Maps (``statewright.children.Children``), set by the engine.
        self.children: Any = None

    def ended(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        """A run just stopped: its messages of the old token go, and it is counted."""
        ends = {
            SUCCEEDED: self._succeeded,
            FAILED: self._failed,
            CANCELLED: self._cancelled,
            PAUSED: self._paused,
        }
        ends[run.status](session, run, event)

    def claimed_succeeded(
        self, session: Session, claim: Claim, dest: str, context: dict[str, Any]
    ) -> None:
        """The fast path moved a claimed run to terminal state ``dest``."""
        run_end.claimed_run_succeeded(
            session, self._registry.get(claim.workflow), claim, dest, context
        )
        if self.children is not None:  # a child's end counts in its parent's join
            self.children.finished(session, claim.run_id, SUCCEEDED)
        self._count(claim.workflow, SUCCEEDED)

    def _succeeded(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        self._dispatcher.discard_for_run(session, run.id)
        self._count(run.workflow, SUCCEEDED)
        run_end.run_ended(session, self._registry.get(run.workflow), run, "succeeded")
        self._children_finished(session, run)

    def _failed(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        self._dispatcher.discard_for_run(session, run.id)
        self._count(run.workflow, FAILED)
        ending = "aborted" if isinstance(event, lifecycle.Abort) else "failed"
        run_end.run_ended(session, self._registry.get(run.workflow), run, ending)
        self._children_finished(session, run)
        failure_task = self._registry.get(run.workflow).failure_task
        if failure_task is not None:
            self._enqueue(
                session, f"{run.workflow}.{failure_task}", kwargs={"run_id": run.id}, run_id=run.id
            )

    def _cancelled(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        self._dispatcher.discard_for_run(session, run.id)
        self._count(run.workflow, CANCELLED)
        run_end.run_ended(session, self._registry.get(run.workflow), run, "cancelled")
        self._children_finished(session, run)

    def _paused(self, session: Session, run: WorkflowRun, event: lifecycle.Event) -> None:
        """A paused run keeps its deadline timer (and what it scheduled ahead)."""
        self._dispatcher.discard_for_run(session, run.id, steps_only=True)
        self._metrics.incr("run.paused", tags={"workflow": run.workflow})

    def _children_finished(self, session: Session, run: WorkflowRun) -> None:
        """A child's end counts in its parent's join (or Map); a parent that stopped with
        children running has its ``child_policy`` carried out."""
        if self.children is not None:
            self.children.finished(session, run.id, run.status, run.failure_reason, run)

    def _count(self, workflow: str, status: str) -> None:
        self._metrics.incr("run.finished", tags={"workflow": workflow, "status": status})
