"""Replay: walk recorded histories through the current definition.

A definition change that would strand runs in flight shows up as the first
recorded transition the definition no longer allows. Replay also rebuilds a run
as it stood at any position of its history. States renamed since a history was
recorded are followed through ``Workflow.renames``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from statewright.definition import Definition
from statewright.errors import InvalidParamsError, StatewrightError
from statewright.queries import RunInfo, TransitionInfo
from statewright.redaction import redact_value

FORMAT = "statewright.history"
VERSION = 1

#: Engine events that keep the run in its state, and the status each leaves it in.
STAYS = {
    "retry": None,
    "poll": None,
    "redispatch": None,
    "pause": "paused",
    "resume": "running",
    "cancel": "cancelled",
    "abort": "failed",
    "fail": "failed",
    "redrive": "running",
    "deadline": "failed",
}


@dataclass(frozen=True, slots=True)
class Recorded:
    """One history row as recorded."""

    seq: int
    from_state: str | None
    trigger: str
    to_state: str
    attempt: int
    #: How many polls a ``poll`` row stands for (polls in a row fold into one row).
    polls: int = 1


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """A run's history as exported."""

    run_id: str
    workflow: str
    definition_version: str
    transitions: tuple[Recorded, ...]


@dataclass(frozen=True, slots=True)
class ReplayedState:
    """A run rebuilt from its history, as it stood after ``position`` rows."""

    position: int
    state: str
    status: str
    attempt: int
    polls: int


class ReplayDivergenceError(StatewrightError):
    """A recorded transition the current definition no longer allows."""

    def __init__(self, run: RecordedRun, row: Recorded, why: str, allowed: Iterable[str]) -> None:
        listed = ", ".join(repr(t) for t in allowed) or "(none)"
        super().__init__(
            f"run {run.run_id} of {run.workflow!r}, position {row.seq}: "
            f"{row.from_state!r} --{row.trigger}--> {row.to_state!r} {why}; "
            f"from {row.from_state!r} the definition allows: {listed}"
        )
        self.run_id = run.run_id
        self.position = row.seq
        self.transition = (row.from_state, row.trigger, row.to_state)


def export_history(run: RunInfo, history: Iterable[TransitionInfo]) -> dict[str, Any]:
    """A run's history as a JSON document that ``load_history`` and replay read; each
    row's detail (the error of a retry or failure, a signal's data) is redacted."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run.id,
        "workflow": run.workflow,
        "definition_version": run.definition_version,
        "status": run.status,
        "transitions": [
            {
                "seq": h.seq,
                "from": h.from_state,
                "trigger": h.trigger,
                "to": h.to_state,
                "attempt": h.attempt,
                "at": h.at.isoformat(),
                **({"detail": redact_value("detail", h.detail)} if h.detail else {}),
                **({"polls": h.polls, "first_at": h.first_at.isoformat()} if h.polls > 1 else {}),
            }
            for h in history
        ],
    }


def load_history(document: object, where: str = "history") -> RecordedRun:
    """Read an exported history, saying exactly what is wrong with a bad one."""
    if not isinstance(document, Mapping):
        raise InvalidParamsError(f"{where} is not a statewright history (not a JSON object)")
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise InvalidParamsError(
            f"{where} is not a statewright history (format {document.get('format')!r}, "
            f"version {document.get('version')!r}; expected {FORMAT!r} version {VERSION})"
        )
    rows = []
    transitions = document.get("transitions")
    for index, row in enumerate(transitions if isinstance(transitions, list) else []):
        if not _row_ok(row):
            raise InvalidParamsError(
                f"{where}: transitions[{index}] is {str(row)[:80]}; each needs seq (a whole "
                "number), from (a state or null), trigger and to (states), attempt, and "
                "optionally polls (a whole number of at least 1)"
            )
        polls = row.get("polls", 1)
        rows.append(
            Recorded(row["seq"], row["from"], row["trigger"], row["to"], row["attempt"], polls)
        )
    if not rows:
        raise InvalidParamsError(f"{where} has no transitions")
    return RecordedRun(
        str(document.get("run_id")),
        str(document.get("workflow")),
        str(document.get("definition_version")),
        tuple(rows),
    )


def _row_ok(row: object) -> bool:
    if not isinstance(row, Mapping):
        return False
    whole = all(
        isinstance(row.get(k), int) and not isinstance(row.get(k), bool) for k in ("seq", "attempt")
    )
    named = all(isinstance(row.get(k), str) and row.get(k) for k in ("trigger", "to"))
    polls = row.get("polls", 1)
    counted = isinstance(polls, int) and not isinstance(polls, bool) and polls >= 1
    return (
        whole
        and named
        and counted
        and (row.get("from") is None or isinstance(row.get("from"), str))
    )


def replay(definition: Definition, run: RecordedRun, *, until: int | None = None) -> ReplayedState:
    """Walk ``run`` through ``definition``; the run as it stood after ``until`` rows (or all).

    Raises ``ReplayDivergenceError`` at the first transition no longer allowed.
    """
    if run.workflow != definition.name:
        raise InvalidParamsError(
            f"run {run.run_id} is a {run.workflow!r} run; cannot replay it as {definition.name!r}"
        )
    rename = definition.renames
    state, status, attempt, polls = "", "running", 0, 0
    for position, row in enumerate(run.transitions, start=1):
        if until is not None and position > until:
            break
        source = rename.get(row.from_state, row.from_state) if row.from_state else None
        dest = rename.get(row.to_state, row.to_state)
        if row.trigger == "start" or position == 1:
            if position != 1 or row.trigger != "start":
                raise ReplayDivergenceError(
                    run,
                    row,
                    "is not where a run can begin or begin again"
                    if position != 1
                    else "does not start the run",
                    [],
                )
            if dest != definition.initial:
                raise ReplayDivergenceError(
                    run,
                    row,
                    f"starts in {dest!r}, but runs now start in {definition.initial!r}",
                    [],
                )
        elif source != state:
            raise ReplayDivergenceError(
                run,
                row,
                f"leaves {source!r}, but the run was in {state!r}",
                definition.triggers_from(state),
            )
        elif problem := _status_refuses(row.trigger, status):
            raise ReplayDivergenceError(run, row, problem, definition.triggers_from(state))
        elif row.trigger in STAYS:
            if dest != state or state not in definition.steps:
                raise ReplayDivergenceError(
                    run,
                    row,
                    f"is an engine event in {state!r}, which has no step now",
                    definition.triggers_from(state),
                )
            status = STAYS[row.trigger] or status
            polls = (
                polls + row.polls
                if row.trigger == "poll"
                else 0
                if row.trigger == "redrive"
                else polls
            )
        elif definition.destination(state, row.trigger) != dest:
            raise ReplayDivergenceError(
                run, row, "is no longer allowed", definition.triggers_from(state)
            )
        else:
            polls = 0
            status = "succeeded" if definition.is_terminal(dest) else status
        state, attempt = dest, row.attempt
    total = len(run.transitions)
    return ReplayedState(
        total if until is None else min(until, total), state, status, attempt, polls
    )


#: Which status each engine event needs; declared triggers need a running run.
NEEDS = {
    "resume": ("paused",),
    "redrive": ("failed",),
    "pause": ("running",),
    "cancel": ("running", "paused"),
    "abort": ("running", "paused"),
    "fail": ("running",),
    "retry": ("running",),
    "poll": ("running",),
    "redispatch": ("running",),
    "deadline": ("running", "paused"),
}


def _status_refuses(trigger: str, status: str) -> str | None:
    allowed = NEEDS.get(trigger, ("running",))
    if status in allowed:
        return None
    return f"happens to a {status} run, but only to a {' or '.join(allowed)} one"
