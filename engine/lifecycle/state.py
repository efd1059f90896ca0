"""A run's state as a pure value, and the column values each part of a move writes.

``statewright.lifecycle`` builds every event's effect from these parts; the fast SQL
statements (``statewright.stores.statements``) bind the same value functions
(``entering``, ``dispatching``, ``claiming``, ``ending``), so the ORM path and the SQL
path write the same columns.
No database here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

RUNNING = "running"
PAUSED = "paused"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
#: Every status a run can have (the run table's check constraint lists the same).
STATUSES = (RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED)
#: A run in one of these has finished: only a failed one can go on (a redrive).
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})
#: A run in one of these has not finished yet.
ACTIVE = (RUNNING, PAUSED)


@dataclass(frozen=True, slots=True)
class RunState:
    """The columns of a run that its life changes (ids, params and context aside)."""

    status: str
    state: str
    #: Attempts of the current state so far (counted when a step is claimed).
    attempt: int
    polls: int
    #: Fencing token: a message or a claim carrying an older one is stale.
    token: int
    claimed: bool
    lease_expires_at: datetime | None
    state_entered_at: datetime
    #: History position of the row that entered the current state.
    entry_seq: int
    history_len: int
    pause_requested: bool
    pause_at: str | None
    cancel_requested: bool
    cancel_at: str | None
    failure_reason: str | None
    failure_detail: Mapping[str, Any] | None
    deadline_at: datetime | None
    kept_signals: tuple[Mapping[str, Any], ...] | None
    updated_at: datetime
    finished_at: datetime | None


#: The names of ``RunState``'s fields, which are also the run table's columns.
FIELDS: tuple[str, ...] = tuple(RunState.__dataclass_fields__)


def started(now: datetime, *, pause_at: str | None = None) -> RunState:
    """A new run, before its first move (``Advance`` along ``start``) enters a state."""
    return RunState(
        status=RUNNING,
        state="",
        attempt=0,
        polls=0,
        token=0,
        claimed=False,
        lease_expires_at=None,
        state_entered_at=now,
        entry_seq=0,
        history_len=0,
        pause_requested=False,
        pause_at=pause_at,
        cancel_requested=False,
        cancel_at=None,
        failure_reason=None,
        failure_detail=None,
        deadline_at=None,
        kept_signals=None,
        updated_at=now,
        finished_at=None,
    )


@dataclass(frozen=True, slots=True)
class Record:
    """A history row an event writes: the run as it stood, and where it went."""

    seq: int
    trigger: str
    from_state: str | None
    to_state: str
    attempt: int
    token: int


@dataclass(frozen=True, slots=True)
class Transition:
    """What an event did: the run after it, and the history rows it wrote, in order."""

    run: RunState
    records: tuple[Record, ...] = ()


# -- column values (the run stores' SQL statements bind these with parameters) --


def recording(seq: Any, now: Any) -> dict[str, Any]:
    """A history row was added at position ``seq``."""
    return {"history_len": seq, "updated_at": now}


def entering(dest: Any, now: Any, seq: Any) -> dict[str, Any]:
    """The run enters ``dest`` by history row ``seq``: fresh attempt and poll budgets."""
    return {"state": dest, "attempt": 0, "polls": 0, "state_entered_at": now, "entry_seq": seq}


def dispatching(token: Any, lease: Any) -> dict[str, Any]:
    """The current state's step is sent under ``token``, unclaimed, owed by ``lease``."""
    return {"token": token, "claimed": False, "lease_expires_at": lease}


def claiming(attempt: Any, lease: Any) -> dict[str, Any]:
    """A worker takes the step: one more attempt, leased until ``lease``."""
    return {"attempt": attempt + 1, "claimed": True, "lease_expires_at": lease}


def ending(
    status: str, now: Any, token: Any, reason: Any = None, detail: Any = None
) -> dict[str, Any]:
    """The run stops as ``status`` under ``token`` (a step in flight is fenced off). A
    paused run keeps what it scheduled for states ahead and its kept signals; a
    finished one drops them and keeps its failure ``reason`` and ``detail``."""
    stopped = {
        "status": status,
        "token": token,
        "claimed": False,
        "lease_expires_at": None,
        "pause_requested": False,
        "cancel_requested": False,
    }
    if status == PAUSED:
        return stopped
    return {
        **stopped,
        "pause_at": None,
        "cancel_at": None,
        "kept_signals": None,
        "failure_reason": reason,
        "failure_detail": detail,
        "finished_at": now,
    }


# -- the parts events are made of --


def record(run: RunState, trigger: str, to_state: str, now: datetime) -> Transition:
    """Write the next history row, from the run as it stands."""
    seq = run.history_len + 1
    row = Record(seq, trigger, run.state or None, to_state, run.attempt, run.token)
    return Transition(replace(run, **recording(seq, now)), (row,))


def then(first: Transition, run: RunState) -> Transition:
    """``first``'s rows, leading to ``run``."""
    return Transition(run, first.records)


def ended(
    run: RunState,
    status: str,
    now: datetime,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> RunState:
    """The run ended (succeeded, failed, cancelled) or stopped (paused), token moved on."""
    return replace(run, **ending(status, now, run.token + 1, reason, detail))


def asked(run: RunState, now: datetime, **columns: Any) -> Transition:
    """Something asked of the run, for later: ``columns`` change, no history row."""
    return Transition(replace(run, updated_at=now, **columns))


def advanced(run: RunState, trigger: str, dest: str, terminal: bool, now: datetime) -> Transition:
    """The row ``trigger`` and entering ``dest``; a ``terminal`` one ends the run."""
    moved = record(run, trigger, dest, now)
    entered = replace(moved.run, **entering(dest, now, moved.records[0].seq))
    return then(moved, ended(entered, SUCCEEDED, now) if terminal else entered)


def failed(
    run: RunState, trigger: str, now: datetime, reason: str, detail: Mapping[str, Any]
) -> Transition:
    """The row ``trigger``, then the run ends as failed with ``reason`` and ``detail``."""
    row = record(run, trigger, run.state, now)
    return then(row, ended(row.run, FAILED, now, reason, detail))
