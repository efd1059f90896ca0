"""A run's life: what each event does to a run, and when it is refused.

Each event is a small frozen class: its ``allowed`` statuses say when it may happen
and its ``effect`` what it does, so "what does abort do to a run, and when is it
refused" is answered by reading ``Abort``. Every change to a run's row goes through
``apply`` (or ``transition``, which also gives the history rows written): the
recorder writes the result to the row and builds its fast SQL statements from the
same parts (``engine.run_state``); operations check ``refusal``; the claim asks
``held``; replay walks recorded histories through ``RECORDED``.

Pure: the clock reading comes in as ``now``, and whatever depends on the definition
or the settings (a lease, a destination) comes in on the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from engine.errors import IllegalOperationError
from engine.run_state import (
    ACTIVE,
    CANCELLED,
    FAILED,
    FINISHED,
    PAUSED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    RunState,
    Transition,
    advanced,
    asked,
    claiming,
    dispatching,
    ended,
    failed,
    record,
    started,
    then,
)


class Event:
    """Something that happens to a run. ``allowed``: the statuses it may happen in;
    ``verb``: what a refusal says it cannot be; ``trigger``: the history row it writes."""

    __slots__ = ()

    allowed: ClassVar[tuple[str, ...]] = (RUNNING,)
    verb: ClassVar[str] = "moved"
    trigger: ClassVar[str | None] = None

    def effect(self, run: RunState, now: datetime) -> Transition:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Advance(Event):
    """Take a declared transition: a step's trigger, a signal, a wait's timeout, the start.

    Writes the row ``trigger``, enters ``dest`` with a fresh attempt and poll budget; a
    ``terminal`` ``dest`` ends the run as succeeded. Otherwise the recorder then sends
    ``dest``'s step (``Dispatch``), or applies a pause or cancel asked for on entering a
    waiting state (``held``). Only a running run moves."""

    verb: ClassVar[str] = "moved along a transition"
    trigger_name: str
    dest: str
    terminal: bool

    def effect(self, run: RunState, now: datetime) -> Transition:
        return advanced(run, self.trigger_name, self.dest, self.terminal, now)


@dataclass(frozen=True, slots=True)
class Dispatch(Event):
    """Send the current state's step under a new token (a step in flight is fenced
    off), unclaimed, owed to a worker by ``lease``. Only a running run."""

    verb: ClassVar[str] = "dispatched"
    lease: datetime | None

    def effect(self, run: RunState, now: datetime) -> Transition:
        return Transition(replace(run, **dispatching(run.token + 1, self.lease)))


@dataclass(frozen=True, slots=True)
class Redeliver(Event):
    """Send the current step's message again under the same token, owed by ``lease``
    (a lost delivery, an early timer). Only a running run."""

    verb: ClassVar[str] = "sent its step again"
    lease: datetime | None

    def effect(self, run: RunState, now: datetime) -> Transition:
        return Transition(replace(run, lease_expires_at=self.lease))


@dataclass(frozen=True, slots=True)
class Claim(Event):
    """A worker takes the current step: the attempt is counted now (a crash mid-step
    still spends it) and the step is leased until ``lease``. Only a running run; a
    pause or cancel asked for applies instead (``held``), and a claim past the last
    attempt fails the run instead (``LostWorker``)."""

    verb: ClassVar[str] = "claimed"
    lease: datetime

    def effect(self, run: RunState, now: datetime) -> Transition:
        return Transition(replace(run, **claiming(run.attempt, self.lease)))


@dataclass(frozen=True, slots=True)
class HandBack(Event):
    """A claimed step that never started goes back: its attempt is not counted (the
    recorder then dispatches it again). Only a running run."""

    verb: ClassVar[str] = "handed back"

    def effect(self, run: RunState, now: datetime) -> Transition:
        return Transition(replace(run, attempt=run.attempt - 1))


@dataclass(frozen=True, slots=True)
class Poll(Event):
    """The step asks to look again later: ``count`` more polls, and the attempt is given
    back (a poll is not an attempt). Writes the row ``poll`` unless ``folded`` into the
    last one (polls in a row are one row). The recorder then dispatches the step for
    later. Only a running run."""

    verb: ClassVar[str] = "polled"
    trigger: ClassVar[str | None] = "poll"
    folded: bool = False
    count: int = 1

    def effect(self, run: RunState, now: datetime) -> Transition:
        if self.folded:
            polled = Transition(replace(run, updated_at=now))
        else:
            polled = record(run, "poll", run.state, now)
        given_back = replace(polled.run, polls=run.polls + self.count, attempt=run.attempt - 1)
        return then(polled, given_back)


@dataclass(frozen=True, slots=True)
class Retry(Event):
    """The step failed and earns another attempt: writes the row ``retry`` (the recorder
    then dispatches the step for later). Only a running run."""

    verb: ClassVar[str] = "retried"
    trigger: ClassVar[str | None] = "retry"

    def effect(self, run: RunState, now: datetime) -> Transition:
        return record(run, "retry", run.state, now)


@dataclass(frozen=True, slots=True)
class Fail(Event):
    """The step failed for good: writes the row ``fail`` and ends the run as failed with
    ``reason`` (for people) and ``detail`` (the real error). Only a running run."""

    verb: ClassVar[str] = "failed"
    trigger: ClassVar[str | None] = "fail"
    reason: str
    detail: Mapping[str, Any]

    def effect(self, run: RunState, now: datetime) -> Transition:
        return failed(run, "fail", now, self.reason, self.detail)


@dataclass(frozen=True, slots=True)
class LostWorker(Event):
    """A claim found every attempt spent, none finished (its workers died): writes the
    row ``fail`` and ends the run as failed; the claim's attempt is not counted. Only
    a running run."""

    verb: ClassVar[str] = "failed for a lost worker"
    reason: str
    detail: Mapping[str, Any]

    def effect(self, run: RunState, now: datetime) -> Transition:
        return failed(run, "fail", now, self.reason, self.detail)


@dataclass(frozen=True, slots=True)
class Abort(Event):
    """An operator stops the run now: writes the row ``abort`` and ends the run as failed
    with ``reason``. The token moves on, so a running step's completion is fenced off;
    the lease, pause and cancel asked for or scheduled, and kept signals are dropped.
    Refused unless the run is running or paused."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "aborted"
    trigger: ClassVar[str | None] = "abort"
    reason: str
    detail: Mapping[str, Any]

    def effect(self, run: RunState, now: datetime) -> Transition:
        return failed(run, "abort", now, self.reason, self.detail)


@dataclass(frozen=True, slots=True)
class DeadlineFail(Event):
    """The run's deadline passed where no deadline trigger leaves its state: writes the
    row ``deadline`` and ends the run as failed. A running or paused run."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "failed by its deadline"
    trigger: ClassVar[str | None] = "deadline"
    reason: str
    detail: Mapping[str, Any]

    def effect(self, run: RunState, now: datetime) -> Transition:
        return failed(run, "deadline", now, self.reason, self.detail)


@dataclass(frozen=True, slots=True)
class DeadlineMove(Event):
    """The run's deadline passed where its deadline trigger leaves the state: a paused
    run resumes first (the deadline outranks a pause: row ``resume``), kept signals are
    dropped, a running step is let go, and the run takes ``trigger_name`` like an
    ``Advance``. A running or paused run."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "moved by its deadline"
    trigger_name: str
    dest: str
    terminal: bool

    def effect(self, run: RunState, now: datetime) -> Transition:
        resumed = Transition(run)
        if run.status == PAUSED:
            resumed = record(replace(run, status=RUNNING), "resume", run.state, now)
        let_go = replace(resumed.run, kept_signals=None, claimed=False)
        moved = advanced(let_go, self.trigger_name, self.dest, self.terminal, now)
        return Transition(moved.run, resumed.records + moved.records)


@dataclass(frozen=True, slots=True)
class Pause(Event):
    """Pause where the run stands. Asked by an operator while a step runs (``claimed``,
    not ``at_boundary``), it only sets ``pause_requested``: the pause applies at the next
    step boundary. Otherwise it writes the row ``pause`` and stops the run as paused
    (the token moves on; the run keeps what it scheduled ahead); ``at_boundary`` (a
    claim, a waiting state entered) also uses up a pause scheduled at this state.
    Refused unless the run is running."""

    verb: ClassVar[str] = "paused"
    trigger: ClassVar[str | None] = "pause"
    at_boundary: bool = False

    def effect(self, run: RunState, now: datetime) -> Transition:
        if run.claimed and not self.at_boundary:
            return asked(run, now, pause_requested=True)
        if self.at_boundary and run.pause_at == run.state:
            run = replace(run, pause_at=None)
        paused = record(run, "pause", run.state, now)
        return then(paused, ended(paused.run, PAUSED, now))


@dataclass(frozen=True, slots=True)
class Cancel(Event):
    """Cancel in an orderly way. Asked by an operator while a step runs (``claimed``, not
    ``at_boundary``), it only sets ``cancel_requested``: the cancel applies at the next
    step boundary, after the running step. Otherwise it writes the row ``cancel`` and
    ends the run as cancelled. Refused unless the run is running or paused (an
    operator's cancel of a cancelled run changes nothing)."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "cancelled"
    trigger: ClassVar[str | None] = "cancel"
    at_boundary: bool = False

    def effect(self, run: RunState, now: datetime) -> Transition:
        if run.claimed and not self.at_boundary:
            return asked(run, now, cancel_requested=True)
        cancelled = record(run, "cancel", run.state, now)
        return then(cancelled, ended(cancelled.run, CANCELLED, now))


@dataclass(frozen=True, slots=True)
class PauseAt(Event):
    """Schedule a pause for when the run reaches state ``at`` (checked to be ahead by the
    caller). Refused unless the run is running or paused."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "paused at a later state"
    at: str

    def effect(self, run: RunState, now: datetime) -> Transition:
        return asked(run, now, pause_at=self.at)


@dataclass(frozen=True, slots=True)
class CancelAt(Event):
    """Schedule a cancel for when the run reaches state ``at`` (checked to be ahead by
    the caller). Refused unless the run is running or paused."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "cancelled at a later state"
    at: str

    def effect(self, run: RunState, now: datetime) -> Transition:
        return asked(run, now, cancel_at=self.at)


@dataclass(frozen=True, slots=True)
class ClearPause(Event):
    """Forget a pause asked for or scheduled but not applied; a paused run stays paused,
    and with nothing asked nothing changes. Refused unless running or paused."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "cleared of a scheduled pause"

    def effect(self, run: RunState, now: datetime) -> Transition:
        if not run.pause_requested and run.pause_at is None:
            return Transition(run)
        return asked(run, now, pause_requested=False, pause_at=None)


@dataclass(frozen=True, slots=True)
class Resume(Event):
    """Resume a paused run at the exact step where it stopped: running again, the row
    ``resume``, a fresh attempt budget for the step, and its kept signals handed over
    (the caller delivers the first still allowed, or dispatches the step). Refused
    unless the run is paused."""

    allowed: ClassVar[tuple[str, ...]] = (PAUSED,)
    verb: ClassVar[str] = "resumed"
    trigger: ClassVar[str | None] = "resume"

    def effect(self, run: RunState, now: datetime) -> Transition:
        resumed = record(replace(run, status=RUNNING), "resume", run.state, now)
        return then(resumed, replace(resumed.run, attempt=0, kept_signals=None))


@dataclass(frozen=True, slots=True)
class Redrive(Event):
    """Continue a failed run from its failed state: running again, its failure and end
    forgotten, fresh attempt and poll budgets and time in the state, a deadline already
    passed dropped, and the row ``redrive``. The recorder then dispatches the step.
    Refused unless the run failed."""

    allowed: ClassVar[tuple[str, ...]] = (FAILED,)
    verb: ClassVar[str] = "redriven"
    trigger: ClassVar[str | None] = "redrive"

    def effect(self, run: RunState, now: datetime) -> Transition:
        passed = run.deadline_at is not None and run.deadline_at <= now
        again = replace(
            run,
            status=RUNNING,
            failure_reason=None,
            failure_detail=None,
            finished_at=None,
            attempt=0,
            polls=0,
            state_entered_at=now,
            deadline_at=None if passed else run.deadline_at,
        )
        return record(again, "redrive", run.state, now)


@dataclass(frozen=True, slots=True)
class Redispatch(Event):
    """The reaper found the step's lease expired (its worker or its message lost): the
    row ``redispatch``; the recorder then sends the step again. Only a running run."""

    verb: ClassVar[str] = "dispatched again"
    trigger: ClassVar[str | None] = "redispatch"

    def effect(self, run: RunState, now: datetime) -> Transition:
        return record(run, "redispatch", run.state, now)


@dataclass(frozen=True, slots=True)
class Signal(Event):
    """An external event fires ``trigger_name``: a running run takes it like an
    ``Advance``; a paused run keeps it (``kept``) to receive when it resumes. Refused
    unless the run is running or paused."""

    allowed: ClassVar[tuple[str, ...]] = ACTIVE
    verb: ClassVar[str] = "signalled"
    trigger_name: str
    dest: str
    terminal: bool
    kept: Mapping[str, Any]

    def effect(self, run: RunState, now: datetime) -> Transition:
        if run.status == PAUSED:
            return asked(run, now, kept_signals=(*(run.kept_signals or ()), self.kept))
        return advanced(run, self.trigger_name, self.dest, self.terminal, now)


#: Every kind of event.
EVENTS: tuple[type[Event], ...] = tuple(Event.__subclasses__())

#: The event each engine trigger in a history row stands for (declared triggers are
#: ``Advance``); replay walks rows through these.
RECORDED: dict[str, Event] = {
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


def held(run: RunState) -> Event | None:
    """What a step boundary in the run's state applies instead of a claim: a cancel
    asked for now or at this state (a cancel beats a pause), else such a pause; or
    nothing. (``recorder.nothing_asked_at`` is the same rule in SQL.)"""
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
