"""What happens to a step, told to observers: claimed, completed, polled, retried,
failed, dropped, continued.

The executor decides and writes; everything else that follows a step (metrics, log
lines, Sentry reports, a test's injected failure, features built on top) is a
``StepObserver`` with a method per event, each doing nothing unless overridden.
Observers run in the order they were added. An error an observer raises on
``claimed`` (just before the handler) counts as the handler's; on the other events
it propagates as the engine's own would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.context import Claim
    from statewright.registry import StepOptions


@dataclass(frozen=True, slots=True)
class StepClaimed:
    """A claimed step whose handler is about to run."""

    step: StepOptions
    claim: Claim


@dataclass(frozen=True, slots=True)
class StepCompleted:
    """A step's move committed: the run took ``trigger`` to ``dest``."""

    step: StepOptions
    trigger: str
    dest: str
    duration_ms: float


@dataclass(frozen=True, slots=True)
class StepPolled:
    """The step asked to run again at ``not_before`` (not an attempt)."""

    step: StepOptions
    not_before: datetime


@dataclass(frozen=True, slots=True)
class StepRetried:
    """The step failed and runs again at ``not_before``; ``detail`` is the error."""

    step: StepOptions
    not_before: datetime
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StepFailed:
    """The run failed at this step, with a readable ``reason`` and the real ``detail``.

    ``error`` is the exception that failed it, if one did; ``worker_lost`` says the
    claim found the attempts spent by workers that never finished."""

    step: StepOptions
    reason: str
    detail: Mapping[str, Any]
    error: BaseException | None = None
    worker_lost: bool = False


@dataclass(frozen=True, slots=True)
class StepDropped:
    """A delivery or completion that had nothing to do, and why (``stale_token``,
    ``duplicate``, ``fenced``…)."""

    step: StepOptions
    reason: str


@dataclass(frozen=True, slots=True)
class StepContinued:
    """The delivery goes on to ``step``, claimed by the move before it."""

    step: StepOptions


class StepObserver:
    """Told what happens to steps; every method does nothing unless overridden."""

    def claimed(self, event: StepClaimed) -> None:
        """The handler is about to run; an error raised here counts as the handler's."""

    def completed(self, event: StepCompleted) -> None:
        """The step's move committed."""

    def polled(self, event: StepPolled) -> None:
        """The step will run again later (a poll)."""

    def retried(self, event: StepRetried) -> None:
        """The step failed and will be retried (recorded and committed)."""

    def failed(self, event: StepFailed) -> None:
        """The run failed at this step."""

    def dropped(self, event: StepDropped) -> None:
        """A delivery or completion was dropped."""

    def continued(self, event: StepContinued) -> None:
        """The delivery goes on to the run's next step."""


class StepObservers(StepObserver):
    """Observers told in the order they were added."""

    def __init__(self, observers: Iterable[StepObserver] = ()) -> None:
        self._observers: tuple[StepObserver, ...] = tuple(observers)

    def add(self, observer: StepObserver) -> None:
        """Tell ``observer`` too, after those already added."""
        self._observers = (*self._observers, observer)

    def remove(self, observer: StepObserver) -> None:
        """Stop telling ``observer``."""
        self._observers = tuple(o for o in self._observers if o is not observer)

    def claimed(self, event: StepClaimed) -> None:
        for observer in self._observers:
            observer.claimed(event)

    def completed(self, event: StepCompleted) -> None:
        for observer in self._observers:
            observer.completed(event)

    def polled(self, event: StepPolled) -> None:
        for observer in self._observers:
            observer.polled(event)

    def retried(self, event: StepRetried) -> None:
        for observer in self._observers:
            observer.retried(event)

    def failed(self, event: StepFailed) -> None:
        for observer in self._observers:
            observer.failed(event)

    def dropped(self, event: StepDropped) -> None:
        for observer in self._observers:
            observer.dropped(event)

    def continued(self, event: StepContinued) -> None:
        for observer in self._observers:
            observer.continued(event)
