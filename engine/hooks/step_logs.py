"""A log line for each thing that happens to a step (the step's fields are bound)."""

from __future__ import annotations

import structlog

from statewright.hooks.logging import bind_log_fields
from statewright.step_events import (
    StepClaimed,
    StepCompleted,
    StepContinued,
    StepDropped,
    StepFailed,
    StepObserver,
    StepPolled,
    StepRetried,
)

log = structlog.get_logger("statewright.execution")


class StepLogs(StepObserver):
    """Logs steps as ``statewright.execution``; a continued step's lines name its task."""

    def claimed(self, event: StepClaimed) -> None:
        log.info("step claimed")

    def completed(self, event: StepCompleted) -> None:
        log.info("step completed", trigger=event.trigger, to=event.dest)

    def polled(self, event: StepPolled) -> None:
        log.info("step polls again", not_before=event.not_before.isoformat())

    def retried(self, event: StepRetried) -> None:
        log.info(
            "step will be retried",
            not_before=event.not_before.isoformat(),
            error_type=event.detail.get("error_type"),
            error=event.detail.get("error_message"),
        )

    def failed(self, event: StepFailed) -> None:
        if event.worker_lost:
            log.warning("run failed: worker lost", reason=event.reason)
            return
        log.warning(
            "run failed",
            reason=event.reason,
            error_type=event.detail.get("error_type"),
            error=event.detail.get("error_message"),
        )

    def dropped(self, event: StepDropped) -> None:
        log.info("message dropped", reason=event.reason)

    def continued(self, event: StepContinued) -> None:
        # logs name the step's own task; task_id stays the delivery's
        bind_log_fields(task=event.step.task_name)
