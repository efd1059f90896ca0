"""Reading a declared class, checking it and freezing it: ``Definition`` for a
workflow, ``TaskGroupDefinition`` for a task group.

Every problem found is collected (``validation.Problems``) and raised as one
``DefinitionError``; a definition is built only from a declaration without any.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from statewright.business_key import KeyFunction, key_function
from statewright.definition.graph import Edge, Graph
from statewright.definition.specs import (
    Definition,
    StepSpec,
    TaskGroupDefinition,
    TaskSpec,
    bind_handlers,
    machine_of,
)
from statewright.definition.validation import (
    NAME,
    NAME_RULE,
    Problems,
    check_name,
    check_reachable,
    check_returned_triggers,
    check_states,
    check_tasks,
    find_initial,
    option_problems,
    parse_edges,
)
from statewright.joins import check_child_policy, collect_joins, collect_maps, map_step
from statewright.outcomes import Outcome
from statewright.schedule import Schedule, declared_schedules
from statewright.silo import normalize_modes
from statewright.waits import RunDeadline, collect_waits, run_deadline

if TYPE_CHECKING:
    from statewright.context import StepContext
    from statewright.definition.declaration import TaskGroup, Workflow


def build_definition(cls: type[Workflow]) -> Definition:
    """Check a workflow class and freeze it into a ``Definition``; one ``DefinitionError``
    names every problem found."""
    problems = Problems(f"workflow class {cls.__name__}")
    name, terminal, graph = _shape(cls, problems)
    steps = _steps(cls, name, graph.edges, problems)
    tasks = collect_tasks(cls, name, problems)
    initial = _check_graph(name, steps, terminal, graph, problems)
    check_tasks(name, tasks, set(steps) | terminal, cls.failure_task, problems)
    deadline, schedules, business_key = _run_options(cls, name, graph, problems)
    child_policy = "cancel"
    with problems.collecting():
        child_policy = check_child_policy(name, cls.child_policy)
    instance = instantiate(cls, problems)
    problems.raise_if_any()
    assert initial is not None, "a problem was raised"
    assert instance is not None, "a problem was raised"
    bound_steps, bound_tasks = bind_handlers(instance, steps, tasks)
    states = graph.reading_order(initial, set(steps) | terminal)
    return Definition(
        name=name,
        initial=initial,
        states=states,
        terminal=terminal,
        edges=graph.edges,
        steps=MappingProxyType(bound_steps),
        renames=MappingProxyType(dict(cls.renames)),
        defaults=_defaults(cls),
        version=_version(name, initial, states, terminal, graph.edges),
        tasks=MappingProxyType(bound_tasks),
        failure_task=cls.failure_task,
        deadline=deadline,
        instance=instance,
        graph=graph,
        machine=machine_of(initial, states, graph),
        schedules=schedules,
        business_key=business_key,
        child_policy=child_policy,
    )


def build_task_group(cls: type[TaskGroup]) -> TaskGroupDefinition:
    """Check a task group class and freeze it; one ``DefinitionError`` names every problem."""
    problems = Problems(f"task group class {cls.__name__}")
    name = check_name("task group", cls.__dict__.get("name"), problems)
    tasks = collect_tasks(cls, name, problems)
    if not tasks:
        problems.add(f"task group {name!r} has no @task methods")
    instance = instantiate(cls, problems)
    problems.raise_if_any()
    _, bound = bind_handlers(instance, {}, tasks)
    return TaskGroupDefinition(
        name=name,
        tasks=MappingProxyType(bound),
        silo_mode=normalize_modes(cls.silo_mode),
        instance=instance,
    )


def _check_graph(
    name: str,
    steps: Mapping[str, StepSpec],
    terminal: frozenset[str],
    graph: Graph,
    problems: Problems,
) -> str | None:
    """The initial state, once the graph's states, reachability and the triggers the
    handlers may return have been checked."""
    initial = find_initial(name, steps, problems)
    check_states(name, steps, terminal, graph, problems)
    if initial is not None:
        check_reachable(name, initial, set(steps) | terminal, terminal, graph, problems)
    check_returned_triggers(name, steps, graph, problems)
    return initial


def _shape(cls: type[Workflow], problems: Problems) -> tuple[str, frozenset[str], Graph]:
    """The workflow's name, terminal states and graph, each checked."""
    declared = _declared(cls, "name", problems)
    name = cls.__name__ if declared is _MISSING else check_name("workflow", declared, problems)
    for problem in option_problems(
        f"workflow {name!r}", retry=cls.retry, time_limit=cls.time_limit, queue=cls.queue
    ):
        problems.add(problem)
    terminal = _terminal(name, _declared(cls, "terminal", problems), problems)
    table = _declared(cls, "transitions", problems)
    edges = () if table is _MISSING else parse_edges(name, table, problems)
    return name, terminal, Graph.of(edges)


def _run_options(
    cls: type[Workflow], name: str, graph: Graph, problems: Problems
) -> tuple[RunDeadline | None, tuple[Schedule, ...], KeyFunction | None]:
    """The run deadline, schedules and business key the workflow declares, checked."""
    deadline: RunDeadline | None = None
    schedules: tuple[Schedule, ...] = ()
    business_key: KeyFunction | None = None
    with problems.collecting():
        deadline = run_deadline(
            name, cls.deadline, cls.on_deadline, cls.deadline_reason, graph.edges
        )
    with problems.collecting():
        schedules = declared_schedules(name, cls.schedules)
    with problems.collecting():
        business_key = key_function(name, cls.business_key)
    return deadline, schedules, business_key


def _steps(
    cls: type[Workflow], name: str, edges: Sequence[Edge], problems: Problems
) -> dict[str, StepSpec]:
    """The ``@step`` handlers, then the waiting states (which run no step), the join
    states (steps that wait for the run's children) and the Map states (whose step is
    the engine's)."""
    steps = _collect_steps(cls, name, problems)
    with problems.collecting():
        waits = collect_waits(name, cls.waits, members(cls), steps, edges)
        for state, (wait, on_signal) in waits.items():
            steps[state] = StepSpec(state, _no_handler, wait=wait, on_signal=on_signal)
    with problems.collecting():
        for state in collect_joins(name, cls.joins, steps, edges):
            steps[state] = replace(steps[state], join=True)
    named = {k: v for klass in _workflow_classes(cls) for k, v in vars(klass).items()}
    with problems.collecting():
        for state, spec in collect_maps(name, cls.maps, named, steps, edges).items():
            steps[state] = StepSpec(state, map_step, map=spec, queue=spec.queue, reason=spec.reason)
    return steps


def _terminal(name: str, declared: object, problems: Problems) -> frozenset[str]:
    if declared is _MISSING:
        return frozenset()
    if isinstance(declared, str) or not isinstance(declared, list | tuple | set | frozenset):
        problems.add(f"workflow {name!r}: terminal must be a list of state names; got {declared!r}")
        return frozenset()
    return frozenset(declared)


def _defaults(cls: type[Workflow]) -> StepSpec:
    """The workflow-wide options, which each step's own options override."""
    return StepSpec(
        state="*",
        handler=_no_handler,
        retry=cls.retry,
        time_limit=cls.time_limit,
        queue=cls.queue,
        silo_mode=normalize_modes(cls.silo_mode),
    )


def instantiate(cls: type[Any], problems: Problems) -> Any:
    """The one instance whose bound methods are the handlers; ``None`` if it cannot be made."""
    try:
        return cls()
    except TypeError as error:
        problems.add(
            f"workflow class {cls.__name__} must be constructible without arguments: {error}"
        )
        return None


def collect_tasks(cls: type[Any], name: str, problems: Problems) -> dict[str, TaskSpec]:
    """The ``@task`` methods of a workflow or task group, by name."""
    tasks: dict[str, TaskSpec] = {}
    for value in members(cls):
        spec: TaskSpec | None = getattr(value, "__statewright_task__", None)
        if spec is None:
            continue
        if not NAME.match(spec.name) or spec.name in tasks:
            problems.add(
                f"workflow {name!r}: task name {spec.name!r} is not allowed or declared twice"
            )
            continue
        tasks[spec.name] = spec
    return tasks


def _collect_steps(cls: type[Workflow], name: str, problems: Problems) -> dict[str, StepSpec]:
    steps: dict[str, StepSpec] = {}
    for value in members(cls):
        fn = value.__func__ if isinstance(value, staticmethod) else value
        spec: StepSpec | None = getattr(fn, "__statewright_step__", None)
        if spec is None:
            continue
        if not NAME.match(spec.state):
            problems.add(
                f"workflow {name!r}: state name {spec.state!r} is not allowed; {NAME_RULE}"
            )
        if spec.state in steps:
            problems.add(f"workflow {name!r}: state {spec.state!r} has two handlers")
            continue
        steps[spec.state] = spec
    return steps


#: What ``_declared`` returns for an attribute the class does not declare.
_MISSING = object()


def _no_handler(ctx: StepContext) -> Outcome:  # pragma: no cover - never called
    raise AssertionError("workflow defaults and waiting states have no step handler")


def _declared(cls: type[Any], attribute: str, problems: Problems) -> object:
    """An attribute declared by the class or a workflow class it extends."""
    for klass in reversed(_workflow_classes(cls)):
        if attribute in vars(klass):
            return vars(klass)[attribute]
    problems.add(f"workflow class {cls.__name__} must declare {attribute!r}")
    return _MISSING


def _workflow_classes(cls: type[Any]) -> list[type]:
    """The workflow (or task group) classes ``cls`` is made of, base first: the classes
    of its MRO that extend ``Workflow`` or ``TaskGroup`` without being one (those two
    mark themselves with ``_statewright_base``)."""
    return [
        k
        for k in reversed(cls.__mro__)
        if getattr(k, "_statewright_base", False) and "_statewright_base" not in vars(k)
    ]


def members(cls: type[Any]) -> list[Any]:
    """Attribute values of the class and of the workflow classes it extends (child wins)."""
    merged: dict[str, Any] = {}
    for klass in _workflow_classes(cls):
        merged.update(vars(klass))
    return list(merged.values())


def _version(
    name: str,
    initial: str,
    states: Sequence[str],
    terminal: frozenset[str],
    edges: Sequence[Edge],
) -> str:
    """The hash a run stores of the definition it started under: its graph only."""
    shape = {
        "name": name,
        "initial": initial,
        "states": sorted(states),
        "terminal": sorted(terminal),
        "edges": sorted([e.trigger, e.source, e.dest] for e in edges),
    }
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
    return digest[:16]
