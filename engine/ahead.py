"""Which states lie ahead of a run, for operations scheduled at a state (``pause(at=)``,
``cancel(at=)``, ``start(pause_at=)``): refused, naming the states ahead, unless the run
has yet to reach the state."""

from __future__ import annotations

from typing import Any

from statewright import lifecycle
from statewright.definition import Definition
from statewright.errors import IllegalOperationError, InvalidParamsError
from statewright.models.engine import WorkflowRun


def where_it_stands(run: WorkflowRun) -> dict[str, Any]:
    """What ``check_ahead`` needs of a run: its current state counts as ahead only while
    its step has yet to be taken. A running step has passed it, and so has a paused run:
    resuming goes on from there, so a pause or cancel scheduled for it would apply the
    moment the run resumes (pause, resume or cancel it now instead)."""
    return {
        "including_current": not run.claimed and run.status != lifecycle.PAUSED,
        "run_id": run.id,
        "paused": run.status == lifecycle.PAUSED,
    }


def check_ahead(
    definition: Definition,
    verb: str,
    at: str,
    current: str,
    *,
    including_current: bool,
    run_id: str | None = None,
    paused: bool = False,
) -> None:
    """``at`` is a state with a step that the run (in ``current``) has yet to reach."""
    ahead = steps_ahead(definition, current) | ({current} if including_current else set())
    listed = ", ".join(s for s in definition.states if s in ahead) or "(none)"
    if at in definition.steps and at in ahead:
        return
    if at not in definition.states:
        raise InvalidParamsError(
            f"cannot {verb} at {at!r}: unknown state {at!r} in workflow {definition.name!r}; "
            f"states ahead: {listed}"
        )
    if definition.is_terminal(at):
        raise InvalidParamsError(
            f"cannot {verb} at {at!r}: {at} is a final state, where a run has already "
            f"finished; states ahead: {listed}"
        )
    who = f"run {run_id} is in {current!r}" if run_id else f"runs start in {current!r}"
    if paused:
        who = f"run {run_id} is paused in {current!r} (resuming goes on from there)"
    raise IllegalOperationError(
        f"cannot {verb} at {at!r}: {who}, and {at!r} is not ahead of it; states ahead: {listed}"
    )


def steps_ahead(definition: Definition, state: str) -> set[str]:
    """The states with a step reachable from ``state`` by one or more moves."""
    return {s for s in definition.ahead_of(state) if s in definition.steps}


__all__ = ["check_ahead", "steps_ahead", "where_it_stands"]
