"""Diagrams of workflows, drawn by ``transitions`` (Mermaid and Graphviz engines).

Everything comes from the frozen definition: terminal states are drawn apart,
states that may poll get a ``poll`` loop, and each state is labelled with its retry
policy. A waiting state is labelled with what it waits for; its signal edges are
marked ``(signal)``, its timeout edge ``(after <timeout>)``, and edges a run takes
when its deadline passes ``(deadline)``; the title carries the workflow's deadline.
The outcomes that are statuses rather than states (a run fails, is cancelled or is
paused in any state with a step) are drawn as their own nodes with dashed edges, so
every way a run can end is on the page. A join state says it joins its children
(and the child policy); a Map state says what it maps over, how widely, and what it
tolerates, and its two ways out are marked. With a run, its current state is
highlighted, the path it took is marked, and a failed state carries the run's reason.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import graphviz
from transitions.extensions import GraphMachine
from transitions.extensions.states import Tags, add_state_features

from statewright.definition import Definition, Edge
from statewright.errors import StatewrightError
from statewright.joins import Map
from statewright.outcomes import Poll
from statewright.queries import RunInfo, TransitionInfo

Format = Literal["mermaid", "dot", "svg", "png"]
FORMATS: tuple[Format, ...] = ("mermaid", "dot", "svg", "png")


class DiagramError(StatewrightError):
    """A diagram that cannot be drawn (usually: Graphviz's ``dot`` is not installed)."""


STYLES: dict[str, Any] = copy.deepcopy(GraphMachine.style_attributes)
STYLES["node"]["terminal"] = {"color": "black", "fillcolor": "lightgrey", "peripheries": "2"}
STYLES["node"]["failed"] = {"color": "red", "fillcolor": "mistyrose", "peripheries": "2"}
STYLES["node"]["paused"] = {"color": "orange", "fillcolor": "lightyellow", "peripheries": "2"}
STYLES["node"]["cancelled"] = {"color": "dimgrey", "fillcolor": "gainsboro", "peripheries": "2"}
STYLES["node"]["outcome"] = {"color": "grey40", "fillcolor": "white", "style": "dashed,filled"}
STYLES["edge"]["outcome"] = {"color": "grey60", "style": "dashed", "fontcolor": "grey40"}

#: Statuses a run reaches from any state with a step, and the triggers that lead there.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "failed": ("fail", "abort"),
    "cancelled": ("cancel",),
    "paused": ("pause",),
}
#: What each outcome node says about leaving it again.
OUTCOME_NOTES = {
    "failed": "run status, redrive continues the failed step",
    "cancelled": "run status",
    "paused": "run status, resume continues the paused step",
}


@add_state_features(Tags)
class _DiagramMachine(GraphMachine):
    style_attributes = STYLES
    #: top to bottom: long state labels read better stacked than side by side
    machine_attributes = {"directed": "true", "strict": "false", "rankdir": "TB"}


class _Model:
    """The one object a diagram machine needs; it holds the state to highlight."""

    state: str


def render(
    definition: Definition,
    fmt: Format = "mermaid",
    *,
    run: RunInfo | None = None,
    history: list[TransitionInfo] | None = None,
) -> bytes:
    """The diagram of ``definition`` (and of ``run``, if given) in ``fmt``."""
    if fmt not in FORMATS:
        raise DiagramError(f"unknown diagram format {fmt!r}; allowed: {', '.join(FORMATS)}")
    engine: Literal["mermaid", "graphviz"] = "mermaid" if fmt == "mermaid" else "graphviz"
    builder = _builder(definition, engine, run, history)
    title = definition.name if run is None else f"{definition.name} run {run.id}"
    if definition.deadline is not None and definition.deadline.after is not None:
        title += f" (deadline {_span(definition.deadline.after)})"
    graph = builder.get_graph(title=title)
    if fmt == "mermaid":
        return str(graph.draw(None)).encode() + b"\n"
    if fmt == "dot":
        return str(graph.source).encode()
    try:
        data: bytes = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DiagramError(
            f"drawing {fmt} needs Graphviz's `dot` program, which is not installed; install the "
            "`graphviz` package (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
            "graphviz), or use --format mermaid or dot"
        ) from None
    return data


def write_all(definitions: Iterable[Definition], directory: Path) -> list[Path]:
    """Write ``<name>.mmd`` and ``<name>.svg`` of each definition into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for definition in sorted(definitions, key=lambda d: d.name):
        for fmt, suffix in (("mermaid", "mmd"), ("svg", "svg")):
            path = directory / f"{definition.name}.{suffix}"
            path.write_bytes(render(definition, fmt))  # type: ignore[arg-type]
            written.append(path)
    return written


def mermaid(
    definition: Definition, run: RunInfo | None = None, history: list[TransitionInfo] | None = None
) -> str:
    """A Mermaid ``stateDiagram-v2`` of the definition (and of the run, if given)."""
    return render(definition, "mermaid", run=run, history=history).decode()


def _builder(
    definition: Definition,
    engine: Literal["mermaid", "graphviz"],
    run: RunInfo | None,
    history: list[TransitionInfo] | None,
) -> Any:
    model = _Model()
    outcomes = outcome_nodes(definition)
    transitions = [[_label(definition, e), e.source, e.dest] for e in definition.edges]
    transitions += [["poll", s, s] for s in definition.steps if _polls(definition, s)]
    transitions += _outcome_transitions(definition, outcomes)
    states = [{"name": s, "tags": _tags(definition, s, run)} for s in definition.states]
    states += [{"name": node, "tags": [OUTCOME_NOTES[status]]} for status, node in outcomes.items()]
    machine = _DiagramMachine(
        model=model,
        states=states,
        transitions=transitions,
        initial=definition.initial,
        auto_transitions=False,
        graph_engine=engine,
        show_state_attributes=True,
        title=definition.name,
    )
    builder: Any = machine.model_graphs[id(model)]
    for state in definition.terminal:
        builder.set_node_style(state, "terminal")
    for transition in _outcome_transitions(definition, outcomes):
        builder.custom_styles["edge"][transition[1]][transition[2]] = "outcome"
    for node in outcomes.values():
        builder.set_node_style(node, "outcome")
    if run is None:
        builder.set_node_style(definition.initial, "default")
    else:
        _mark_run(machine, builder, model, run, history or [], outcomes)
    return builder


def _label(definition: Definition, edge: Edge) -> str:
    """An edge's trigger, marked as a wait's signal or timeout, or a deadline's move."""
    wait = definition.wait(edge.source)
    marks = []
    if wait is not None and edge.trigger in wait.signals:
        marks.append("signal")
    if wait is not None and wait.timeout is not None and edge.trigger == wait.on_timeout:
        marks.append(f"after {_span(wait.timeout)}")
    if definition.deadline is not None and edge.trigger == definition.deadline.trigger:
        marks.append("deadline")
    fanout = definition.map_of(edge.source)
    if fanout is not None and edge.trigger == fanout.on_done:
        marks.append("last item, within tolerance")
    if fanout is not None and edge.trigger == fanout.on_failed:
        marks.append("last item, past tolerance")
    return f"{edge.trigger} ({', '.join(marks)})" if marks else edge.trigger


def outcome_nodes(definition: Definition) -> dict[str, str]:
    """The node name of each outcome status: the status itself, unless a state has that name."""
    return {
        status: status if status not in definition.states else f"run_{status}"
        for status in OUTCOMES
    }


def _outcome_transitions(definition: Definition, outcomes: dict[str, str]) -> list[list[str]]:
    moves = [
        [trigger, state, outcomes[status]]
        for state in definition.steps
        for status, triggers in OUTCOMES.items()
        for trigger in triggers
    ]
    paused = outcomes["paused"]
    moves += [["cancel", paused, outcomes["cancelled"]], ["abort", paused, outcomes["failed"]]]
    return moves


def _mark_run(
    machine: Any,
    builder: Any,
    model: _Model,
    run: RunInfo,
    history: list[TransitionInfo],
    outcomes: dict[str, str],
) -> None:
    machine.set_state(run.state, model)
    for row in history:
        if row.from_state and row.from_state != row.to_state:
            builder.set_previous_transition(row.from_state, row.to_state)
    builder.set_node_style(run.state, _run_style(run))
    node = outcomes.get(run.status)
    if node is not None:
        builder.custom_styles["edge"][run.state][node] = "previous"
        builder.set_node_style(node, _run_style(run))


def _run_style(run: RunInfo) -> str:
    if run.status == "failed":
        return "failed"
    if run.status in ("paused", "cancelled"):
        return run.status
    return "terminal" if run.status == "succeeded" else "active"


def _tags(definition: Definition, state: str, run: RunInfo | None) -> list[str]:
    tags: list[str] = []
    if state in definition.terminal:
        tags.append("terminal")
    spec = definition.steps.get(state)
    if spec is not None and spec.wait is not None:
        tags.append(f"waits for {', '.join(spec.wait.signals)}")
        if spec.wait.timeout is not None:
            tags.append(f"timeout {_span(spec.wait.timeout)} -> {spec.wait.on_timeout}")
        spec = None  # a waiting state runs no step: no retry policy to show
    if spec is not None and spec.join:
        tags.append(f"joins its children (on cancel or abort: {definition.child_policy})")
    if spec is not None and spec.map is not None:
        tags.extend(_map_tags(definition, spec.map))
        spec = None  # its step is the engine's
    retry = (spec.retry if spec else None) or definition.defaults.retry
    if spec is not None and retry is not None:
        tags.append(f"retry x{retry.max_attempts}, backoff {retry.backoff:g}s")
    elif spec is not None:
        tags.append("retry: engine default")
    if spec is not None and spec.poll_deadline is not None:
        tags.append(f"poll deadline {_span(spec.poll_deadline)}")
    if spec is not None and spec.poll_limit is not None:
        tags.append(f"at most {spec.poll_limit} polls")
    if run is not None and run.state == state and run.status != "running":
        reason = f": {_one_line(run.failure_reason)}" if run.failure_reason else ""
        tags.append(f"{run.status}{reason}"[:90])
    return tags


def _map_tags(definition: Definition, fanout: Map) -> list[str]:
    """What a Map state fans out over, how widely (and how long each item may take, if
    it says), and what it tolerates."""
    each = f"{fanout.workflow} runs" if fanout.workflow else f"{fanout.each} tasks"
    limit = fanout.time_limit
    return [
        f"Map over {fanout.items} as {each}",
        f"at most {fanout.concurrency} at a time, pages of {fanout.page_size}",
        *([f"each item within {_span(timedelta(seconds=limit))}"] if limit is not None else []),
        f"tolerates {fanout.tolerance.describe()}",
    ]


def _one_line(text: str) -> str:
    """``text`` on one line without double quotes, which end a Mermaid state's label."""
    return " ".join(text.replace('"', "'").split())


def _polls(definition: Definition, state: str) -> bool:
    """Whether the state may poll: its handler says it returns ``Poll``, or it sets poll limits."""
    spec = definition.steps[state]
    if spec.wait is not None:
        return False
    if spec.poll_deadline is not None or spec.poll_limit is not None:
        return True
    try:
        hints = typing.get_type_hints(spec.handler)
    except Exception:  # an annotation we cannot resolve says nothing either way
        return False
    pending: list[Any] = [hints.get("return")]
    while pending:
        hint = pending.pop()
        if hint is Poll:
            return True
        pending.extend(typing.get_args(hint))
    return False


def _span(span: timedelta) -> str:
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
