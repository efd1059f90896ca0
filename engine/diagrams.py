"""Diagrams of workflows, drawn by ``transitions`` from the frozen definition.

With a run, the run's current state is highlighted and the states it passed
through are marked.
"""

from __future__ import annotations

from typing import Any

from transitions.extensions import GraphMachine

from engine.definition import Definition
from engine.queries import RunInfo, TransitionInfo


class _Model:
    """The one object a diagram machine needs; it only holds the state to highlight."""

    state: str


def mermaid(
    definition: Definition,
    run: RunInfo | None = None,
    history: list[TransitionInfo] | None = None,
) -> str:
    """A Mermaid ``stateDiagram-v2`` of ``definition`` (and of ``run``'s path, if given)."""
    model = _Model()
    machine = GraphMachine(
        model=model,
        states=list(definition.states),
        transitions=[[e.trigger, e.source, e.dest] for e in definition.edges],
        initial=definition.initial,
        auto_transitions=False,
        graph_engine="mermaid",
        show_state_attributes=False,
        title=definition.name if run is None else f"{definition.name} run {run.id}",
    )
    if run is not None:
        machine.set_state(run.state, model)
    builder: Any = machine.model_graphs[id(model)]
    if run is not None and history:
        for row in history:
            if row.from_state and row.from_state != row.to_state:
                builder.set_previous_transition(row.from_state, row.to_state)
    text: str = builder.get_graph().draw(None)
    return text
