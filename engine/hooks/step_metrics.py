"""Count steps by what happened to them, tagged with their workflow and state."""

from __future__ import annotations

from statewright.metrics import Metrics
from statewright.registry import StepOptions
from statewright.step_events import (
    StepCompleted,
    StepContinued,
    StepDropped,
    StepFailed,
    StepObserver,
    StepPolled,
    StepRetried,
)


class StepMetrics(StepObserver):
    """``step.completed`` (and ``step.duration``), ``step.polled``, ``step.retried``,
    ``step.failed``, ``step.dropped`` (tagged with the reason), ``step.continued``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def completed(self, event: StepCompleted) -> None:
        tags = _tags(event.step)
        self._metrics.incr("step.completed", tags=tags)
        self._metrics.timing("step.duration", event.duration_ms, tags)

    def polled(self, event: StepPolled) -> None:
        self._metrics.incr("step.polled", tags=_tags(event.step))

    def retried(self, event: StepRetried) -> None:
        self._metrics.incr("step.retried", tags=_tags(event.step))

    def failed(self, event: StepFailed) -> None:
        self._metrics.incr("step.failed", tags=_tags(event.step))

    def dropped(self, event: StepDropped) -> None:
        self._metrics.incr("step.dropped", tags={**_tags(event.step), "reason": event.reason})

    def continued(self, event: StepContinued) -> None:
        self._metrics.incr("step.continued", tags=_tags(event.step))


def _tags(step: StepOptions) -> dict[str, str]:
    return {"workflow": step.workflow, "state": step.state}
