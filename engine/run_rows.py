"""Lifecycle events applied to run rows: read a row's ``RunState``, apply the event,
write back the columns that changed. The history rows it wrote come back to the
caller, who adds them (with their time, duration and detail)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from statewright import lifecycle
from statewright.lifecycle.state import FIELDS, RunState, Transition
from statewright.models.engine import WorkflowRun


def state_of(run: WorkflowRun) -> RunState:
    """The lifecycle's view of a run row."""
    values: dict[str, Any] = {name: getattr(run, name) for name in FIELDS}
    kept = values["kept_signals"]
    values["kept_signals"] = None if kept is None else tuple(kept)
    return RunState(**values)


def new_row_columns(state: RunState) -> dict[str, Any]:
    """The column values of a new run row in ``state`` (``None``: left unset, NULL)."""
    values = {name: _column(name, getattr(state, name)) for name in FIELDS}
    return {name: value for name, value in values.items() if value is not None}


def apply_to(run: WorkflowRun, event: lifecycle.Event, now: datetime) -> Transition:
    """Apply ``event`` to the locked ``run`` row; only the columns that changed are set."""
    before = state_of(run)
    moved = lifecycle.transition(before, event, now)
    for name in FIELDS:
        value = getattr(moved.run, name)
        if value != getattr(before, name):
            setattr(run, name, _column(name, value))
    return moved


def _column(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "kept_signals":
        return [dict(item) for item in value]
    if name == "failure_detail":
        return dict(value)
    return value
