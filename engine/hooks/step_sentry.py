"""Report a run's failure to Sentry once; tag a continued step's events with its task."""

from __future__ import annotations

from statewright.hooks.sentry import report_failure, tag_scope
from statewright.step_events import StepContinued, StepFailed, StepObserver


class StepSentry(StepObserver):
    """A failed run is reported with its readable reason (retries are not reported)."""

    def failed(self, event: StepFailed) -> None:
        report_failure(event.reason, event.error)

    def continued(self, event: StepContinued) -> None:
        tag_scope(task_name=event.step.task_name)
