"""A run's life: what each event does to a run, and when it is refused.

Each event is a small frozen class: its ``allowed`` statuses say when it may happen
and its ``effect`` what it does, so "what does abort do to a run, and when is it
refused" is answered by reading ``Abort`` (in ``operators``). Every change to a run's
row goes through ``apply`` (or ``transition``, which also gives the history rows it
wrote): the recorder writes the result to the row, and the run stores' fast SQL
statements (``statewright.stores.statements``) are built from the same parts
(``state``); operations check ``refusal``; a claim asks ``held``;
replay walks recorded histories through ``RECORDED``.

- ``state``: the run's state as a frozen value, and the columns each part of a move writes.
- ``steps``: what the engine does (claim, advance, poll, retry, fail, deadline, ...).
- ``operators``: what an operator does (pause, cancel, resume, redrive, abort, signal).

Pure: no database; the clock reading comes in as ``now``, and whatever depends on the
definition or the settings (a lease, a destination) comes in on the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from statewright.errors import IllegalOperationError
from statewright.lifecycle.operators import (
    Abort,
    Cancel,
    CancelAt,
    ClearPause,
    Pause,
    PauseAt,
    Redrive,
    Resume,
    Signal,
)
from statewright.lifecycle.state import (
    ACTIVE,
    CANCELLED,
    FAILED,
    FINISHED,
    PAUSED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    Record,
    RunState,
    Transition,
    started,
)
from statewright.lifecycle.steps import (
    Advance,
    Claim,
    DeadlineFail,
    DeadlineMove,
    Dispatch,
    Event,
    Fail,
    HandBack,
    LostWorker,
    Poll,
    Redeliver,
    Redispatch,
    Retry,
)

EVENTS: tuple[type[Event], ...] = (
    Advance,
    Dispatch,
    Redeliver,
    Claim,
    HandBack,
    Poll,
    Retry,
    Fail,
    LostWorker,
    Abort,
    DeadlineFail,
    DeadlineMove,
    Pause,
    Cancel,
    PauseAt,
    CancelAt,
    ClearPause,
    Resume,
    Redrive,
    Redispatch,
    Signal,
)

#: The event each engine trigger in a history row stands for (declared triggers are
#: ``Advance``); replay walks rows through these.
RECORDED: Mapping[str, Event] = MappingProxyType(
    {
        "retry": Retry(),
        "poll": Poll(),
        "redispatch": Redispatch(),
        "pause": Pause(at_boundary=True),
        "resume": Resume(),
        "cancel": Cancel(at_boundary=True),
        "abort": Abort("", {}),
        "fail": Fail("", {}),
        "redrive": Redrive(),
        "deadline": DeadlineFail("", {}),
    }
)


def held(run: RunState) -> Event | None:
    """What a step boundary in the run's state applies instead of a claim: a cancel
    asked for now or at this state (a cancel beats a pause), else such a pause; or
    nothing. A boundary is a claim of the state's step, or entering (or resuming in) a
    state that may wait with no step message, where no claim would come to apply it.
    (``stores.statements.nothing_asked_at`` is the same rule in SQL.)"""
    if run.cancel_requested or run.cancel_at == run.state:
        return Cancel(at_boundary=True)
    if run.pause_requested or run.pause_at == run.state:
        return Pause(at_boundary=True)
    return None


def allowed(event: Event | type[Event], status: str) -> bool:
    """Whether ``event`` may happen to a run in ``status``."""
    return status in event.allowed


def refusal(event: Event | type[Event], status: str) -> str | None:
    """Why a run in ``status`` refuses ``event`` (``None``: it does not), naming the
    status and the statuses allowed; callers put the run's id in front."""
    if allowed(event, status):
        return None
    finished = " (it has finished)" if status in FINISHED else ""
    return (
        f"is {status}{finished}; only a run that is {' or '.join(event.allowed)} "
        f"can be {event.verb}"
    )


def transition(run: RunState, event: Event, now: datetime) -> Transition:
    """What ``event`` does to ``run`` at ``now``, with the history rows it writes;
    ``IllegalOperationError`` if the run's status refuses it."""
    why = refusal(event, run.status)
    if why is not None:
        raise IllegalOperationError(f"the run {why}")
    return event.effect(run, now)


def apply(run: RunState, event: Event, now: datetime) -> RunState:
    """The run after ``event`` at ``now`` (see ``transition``)."""
    return transition(run, event, now).run


__all__ = [
    "ACTIVE",
    "CANCELLED",
    "EVENTS",
    "FAILED",
    "FINISHED",
    "PAUSED",
    "RECORDED",
    "RUNNING",
    "STATUSES",
    "SUCCEEDED",
    "Abort",
    "Advance",
    "Cancel",
    "CancelAt",
    "Claim",
    "ClearPause",
    "DeadlineFail",
    "DeadlineMove",
    "Dispatch",
    "Event",
    "Fail",
    "HandBack",
    "LostWorker",
    "Pause",
    "PauseAt",
    "Poll",
    "Record",
    "Redeliver",
    "Redispatch",
    "Redrive",
    "Resume",
    "Retry",
    "RunState",
    "Signal",
    "Transition",
    "allowed",
    "apply",
    "held",
    "refusal",
    "started",
    "transition",
]
