"""What an operator does to a run: pause, cancel (now or at a state ahead), clear a
pause, resume, redrive, abort, signal. Each event's ``allowed`` statuses say when it
is refused, its ``effect`` what it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from statewright.lifecycle.state import (
    ACTIVE,
    CANCELLED,
    FAILED,
    PAUSED,
    RUNNING,
    RunState,
    Transition,
    advanced,
    asked,
    ended,
    failed,
    record,
    then,
)
from statewright.lifecycle.steps import Event


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
class Pause(Event):
    """Pause where the run stands. Asked by an operator while a step runs (``claimed``,
    not ``at_boundary``), it only sets ``pause_requested``: the pause applies at the next
    step boundary. Otherwise it writes the row ``pause`` and stops the run as paused
    (the token moves on; the run keeps what it scheduled ahead), using up a pause
    scheduled at this state: it has applied, so a resume does not pause again.
    Refused unless the run is running."""

    verb: ClassVar[str] = "paused"
    trigger: ClassVar[str | None] = "pause"
    at_boundary: bool = False

    def effect(self, run: RunState, now: datetime) -> Transition:
        if run.claimed and not self.at_boundary:
            return asked(run, now, pause_requested=True)
        if run.pause_at == run.state:
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
    passed dropped, and the row ``redrive``. The recorder then dispatches the step; in
    a Map state the Map's failed items are queued to run again first, and the run waits
    for them (``statewright.fanout.redrive``). Refused unless the run failed."""

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
