"""What the engine does to a run: a step's delivery (claim, advance, poll, retry, fail,
hand back), its messages (dispatch, redeliver, the reaper's redispatch) and its deadline.

Each event's ``allowed`` statuses say when it may happen, its ``effect`` what it does;
``statewright.lifecycle.apply`` checks the one and applies the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from statewright.lifecycle.state import (
    ACTIVE,
    PAUSED,
    RUNNING,
    RunState,
    Transition,
    advanced,
    claiming,
    dispatching,
    failed,
    record,
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
    ``dest``'s step (``Dispatch``), or, on entering a waiting, join or Map state, applies
    a pause or cancel asked for now or at ``dest`` (``held``). Only a running run moves."""

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
class Redispatch(Event):
    """The reaper found the step's lease expired (its worker or its message lost): the
    row ``redispatch``; the recorder then sends the step again. Only a running run."""

    verb: ClassVar[str] = "dispatched again"
    trigger: ClassVar[str | None] = "redispatch"

    def effect(self, run: RunState, now: datetime) -> Transition:
        return record(run, "redispatch", run.state, now)
