"""Declaring a workflow: a class validated once, when it is declared, then frozen.

A workflow is a subclass of ``Workflow`` with a ``name``, a ``transitions`` table of
``(trigger, source, dest)``, ``terminal`` states, and one ``@step`` handler method per
non-terminal state. The class is instantiated once, when declared; handlers are
that instance's bound methods, so a workflow keeps no per-run state. Diagrams,
replay and execution all read the same frozen ``Definition``; its ``transitions``
machine is built once per definition.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from transitions import Machine

from statewright.business_key import KeyFunction, KeySource, key_function
from statewright.errors import DefinitionError
from statewright.outcomes import Outcome
from statewright.retry import RetryPolicy
from statewright.schedule import Schedule, declared_schedules
from statewright.silo import SiloMode, normalize_modes
from statewright.waits import RunDeadline, Wait, collect_waits, run_deadline

if TYPE_CHECKING:
    from statewright.context import StepContext

#: A bound handler: takes the step's context, returns a trigger or ``Poll``.
Handler = Callable[["StepContext"], Outcome]

#: Triggers the engine itself writes into history; a workflow may not declare them.
ENGINE_EVENTS = frozenset(
    {
        "start",
        "retry",
        "poll",
        "pause",
        "resume",
        "cancel",
        "abort",
        "fail",
        "redrive",
        "redispatch",
        "deadline",
    }
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One state's handler and its options as declared (``None`` = inherit)."""

    state: str
    #: The method as declared until the class is bound, then the bound ``Handler``.
    handler: Callable[..., Outcome]
    initial: bool = False
    retry: RetryPolicy | None = None
    time_limit: float | None = None
    queue: str | None = None
    silo_mode: frozenset[SiloMode] | None = None
    reason: str | None = None
    poll_limit: int | None = None
    poll_deadline: timedelta | None = None
    #: Set for a waiting state: the signals that leave it and its timeout.
    wait: Wait | None = None
    #: A waiting state's signal handler (bound like ``handler``), if it has one.
    on_signal: Callable[..., None] | None = None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task that belongs to a workflow but is not a state: ``<workflow>.<name>``.

    Steps dispatch it through the outbox (``ctx.enqueue``); it receives a
    ``TaskContext`` and its keyword arguments.
    """

    name: str
    handler: Callable[..., None]
    queue: str | None = None
    silo_mode: frozenset[SiloMode] | None = None
    time_limit: float | None = None
    celery_options: Mapping[str, Any] = field(default_factory=dict)
    #: Appended to the metric instance: ``(**kwargs) -> suffix`` (e.g. per batch).
    stat_suffix: Callable[..., str] | None = None
    #: When Celery beat starts the task (a ``celery.schedules`` schedule, or a function
    #: returning one, called only where beat's schedule is loaded), if ever.
    schedule: Any = None


@dataclass(frozen=True, slots=True)
class Edge:
    """A declared move: ``trigger`` takes the run from ``source`` to ``dest``."""

    trigger: str
    source: str
    dest: str


def step(
    state: str | None = None,
    *,
    initial: bool = False,
    retry: RetryPolicy | None = None,
    time_limit: float | None = None,
    queue: str | None = None,
    silo_mode: SiloMode | Iterable[SiloMode] | None = None,
    reason: str | None = None,
    poll_limit: int | None = None,
    poll_deadline: timedelta | float | None = None,
) -> Callable[[Callable[[Any, StepContext], Outcome]], Any]:
    """Mark a method of a ``Workflow`` as the handler of ``state``.

    The method takes the ``StepContext`` and returns a trigger name or ``Poll``.
    ``state`` defaults to the method's name. ``reason`` is the sentence a person
    reads when the run fails in this state.
    """
    deadline = (
        timedelta(seconds=poll_deadline)
        if isinstance(poll_deadline, int | float)
        else poll_deadline
    )

    def mark(fn: Callable[[Any, StepContext], Outcome]) -> Any:
        check_options(
            f"@step of {fn.__qualname__}",
            retry=retry,
            time_limit=time_limit,
            queue=queue,
            poll_limit=poll_limit,
            poll_deadline=deadline,
        )
        spec = StepSpec(
            state=state or fn.__name__,
            handler=fn,
            initial=initial,
            retry=retry,
            time_limit=time_limit,
            queue=queue,
            silo_mode=normalize_modes(silo_mode),
            reason=reason,
            poll_limit=poll_limit,
            poll_deadline=deadline,
        )
        fn.__statewright_step__ = spec  # type: ignore[attr-defined]
        return fn

    return mark


def task(
    name: str | None = None,
    *,
    queue: str | None = None,
    silo_mode: SiloMode | Iterable[SiloMode] | None = None,
    time_limit: float | None = None,
    stat_suffix: Callable[..., str] | None = None,
    schedule: Any = None,
    **celery_options: Any,
) -> Callable[[Callable[..., None]], Any]:
    """Mark a method of a ``Workflow`` or ``TaskGroup`` as a task (not a state).

    The method takes a ``TaskContext`` and keyword arguments; it runs as the
    instrumented Celery task ``<owner>.<name>`` (``name`` defaults to the method's).
    ``schedule`` (a ``celery.schedules`` schedule) makes Celery beat start it.
    """

    def mark(fn: Callable[..., None]) -> Any:
        fn.__statewright_task__ = TaskSpec(  # type: ignore[attr-defined]
            name=name or fn.__name__,
            handler=fn,
            queue=queue,
            silo_mode=normalize_modes(silo_mode),
            time_limit=time_limit,
            celery_options=MappingProxyType(dict(celery_options)),
            stat_suffix=stat_suffix,
            schedule=schedule,
        )
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Definition:
    """A validated, frozen workflow definition."""

    name: str
    initial: str
    states: tuple[str, ...]
    terminal: frozenset[str]
    edges: tuple[Edge, ...]
    steps: Mapping[str, StepSpec]
    renames: Mapping[str, str]
    defaults: StepSpec
    version: str
    tasks: Mapping[str, TaskSpec] = field(compare=False, repr=False)
    #: A task enqueued (with ``run_id``) in the transaction that fails a run.
    failure_task: str | None = field(compare=False, repr=False)
    #: How long a run may take in all, and what happens when that passes.
    deadline: RunDeadline | None = field(compare=False, repr=False)
    instance: Workflow = field(compare=False, repr=False)
    machine: Machine = field(compare=False, repr=False)
    #: Cron schedules that start runs of this workflow (see ``statewright.scheduler``).
    schedules: tuple[Schedule, ...] = field(default=(), compare=False, repr=False)
    #: The run's business key from its params (``statewright.business_key``), if declared.
    business_key: KeyFunction | None = field(compare=False, repr=False, default=None)

    def task_name(self, state: str) -> str:
        """The Celery task name of ``state``'s handler (or of one of the workflow's tasks)."""
        return f"{self.name}.{state}"

    @property
    def silo_mode(self) -> frozenset[SiloMode] | None:
        return self.defaults.silo_mode

    def bound_to(self, instance: Workflow) -> Definition:
        """This definition with handlers bound to ``instance`` (a configured workflow)."""
        if type(instance).definition is not self:
            raise DefinitionError(
                f"{type(instance).__name__} instance cannot bind workflow {self.name!r}"
            )
        steps, tasks = _bind(instance, self.steps, self.tasks)
        return replace(
            self, steps=MappingProxyType(steps), tasks=MappingProxyType(tasks), instance=instance
        )

    def is_terminal(self, state: str) -> bool:
        return state in self.terminal

    def wait(self, state: str) -> Wait | None:
        """The wait declared for ``state``, if it is a waiting state."""
        spec = self.steps.get(state)
        return spec.wait if spec is not None else None

    def triggers_from(self, state: str) -> tuple[str, ...]:
        """The triggers declared from ``state``, sorted."""
        if state not in self.machine.states:
            return ()
        return tuple(sorted(self.machine.get_triggers(state)))

    def destination(self, state: str, trigger: str) -> str | None:
        """Where ``trigger`` leads from ``state``, or ``None`` if that move is not declared."""
        if trigger not in self.machine.events or state not in self.machine.states:
            return None
        moves = self.machine.get_transitions(trigger=trigger, source=state)
        return str(moves[0].dest) if moves else None

    def ahead_of(self, state: str) -> frozenset[str]:
        """States reachable from ``state`` by one or more declared moves."""
        return _reachable(self.edges, state, include_start=False)


class Workflow:
    """Base class of workflow declarations; subclasses are validated when declared."""

    name: ClassVar[str]
    transitions: ClassVar[Sequence[tuple[str, str, str]]]
    terminal: ClassVar[Sequence[str]]
    #: Old state name -> current name, so histories recorded before a rename replay.
    renames: ClassVar[Mapping[str, str]] = {}
    #: Workflow-wide defaults, overridden per step by ``@step`` options.
    retry: ClassVar[RetryPolicy | None] = None
    time_limit: ClassVar[float | None] = None
    queue: ClassVar[str | None] = None
    silo_mode: ClassVar[SiloMode | Iterable[SiloMode] | None] = None
    #: Name of one of the workflow's ``@task`` methods to run when a run fails.
    failure_task: ClassVar[str | None] = None
    #: Waiting states by name: each is left by a signal or its timeout, and runs no step.
    waits: ClassVar[Mapping[str, Wait]] = {}
    #: How long a whole run may take (``start(..., deadline=...)`` may shorten it).
    deadline: ClassVar[timedelta | float | None] = None
    #: The trigger a run takes when its deadline passes, where declared from its state;
    #: elsewhere (or if unset) the run fails with ``deadline_reason``.
    on_deadline: ClassVar[str | None] = None
    deadline_reason: ClassVar[str | None] = None
    #: ``Schedule(...)``s that start runs of this workflow.
    schedules: ClassVar[Sequence[Schedule]] = ()
    #: What a run is about, to find it by: a param name, or a function of the params.
    business_key: ClassVar[KeySource | None] = None
    definition: ClassVar[Definition]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.definition = build_definition(cls)


@dataclass(frozen=True, slots=True)
class TaskGroupDefinition:
    """A frozen group of tasks that are not a state machine (periodic fan-outs, say)."""

    name: str
    tasks: Mapping[str, TaskSpec]
    silo_mode: frozenset[SiloMode] | None
    instance: TaskGroup = field(compare=False, repr=False)

    def task_name(self, task: str) -> str:
        return f"{self.name}.{task}"

    def bound_to(self, instance: TaskGroup) -> TaskGroupDefinition:
        """This group with its tasks bound to ``instance`` (a configured group)."""
        _, tasks = _bind(instance, {}, self.tasks)
        return replace(self, tasks=MappingProxyType(tasks), instance=instance)


class TaskGroup:
    """Base class of task groups: a ``name`` and ``@task`` methods, validated when declared."""

    name: ClassVar[str]
    silo_mode: ClassVar[SiloMode | Iterable[SiloMode] | None] = None
    definition: ClassVar[TaskGroupDefinition]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise DefinitionError(
                f"task group name {name!r} is not allowed; use lowercase letters, digits and _"
            )
        tasks = _collect_tasks(cls, name)
        if not tasks:
            raise DefinitionError(f"task group {name!r} has no @task methods")
        instance = _instantiate(cls)
        _, bound = _bind(instance, {}, tasks)
        cls.definition = TaskGroupDefinition(
            name=name,
            tasks=MappingProxyType(bound),
            silo_mode=normalize_modes(cls.silo_mode),
            instance=instance,
        )


def build_definition(cls: type[Workflow]) -> Definition:
    """Validate a workflow class and freeze it into a ``Definition``."""
    name = _declared(cls, "name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f"workflow name {name!r} is not allowed; use lowercase letters, digits and _"
        )
    check_options(f"workflow {name!r}", retry=cls.retry, time_limit=cls.time_limit, queue=cls.queue)
    tasks = _collect_tasks(cls, name)
    instance = _instantiate(cls)
    terminal = frozenset(_declared(cls, "terminal"))
    edges = _edges(name, _declared(cls, "transitions"))
    declared = _collect_steps(cls, name)
    for state, (wait, on_signal) in collect_waits(
        name, cls.waits, _members(cls), declared, edges
    ).items():
        declared[state] = StepSpec(state, _no_handler, wait=wait, on_signal=on_signal)
    steps, tasks = _bind(instance, declared, tasks)
    initial = _initial(name, steps)
    _check_states(name, steps, terminal, edges)
    _check_reachable(name, initial, steps, terminal, edges)
    _check_returned_triggers(name, steps, edges)
    _check_tasks(name, tasks, set(steps) | terminal, cls.failure_task)
    states = _ordered_states(initial, edges, set(steps) | terminal)
    machine = Machine(
        model=None,
        states=list(states),
        initial=initial,
        auto_transitions=False,
        transitions=[{"trigger": e.trigger, "source": e.source, "dest": e.dest} for e in edges],
    )
    defaults = StepSpec(
        state="*",
        handler=_no_handler,
        retry=cls.retry,
        time_limit=cls.time_limit,
        queue=cls.queue,
        silo_mode=normalize_modes(cls.silo_mode),
    )
    renames = dict(cls.renames)
    return Definition(
        name=name,
        initial=initial,
        states=states,
        terminal=terminal,
        edges=edges,
        steps=MappingProxyType(steps),
        renames=MappingProxyType(renames),
        defaults=defaults,
        version=_version(name, initial, states, terminal, edges),
        tasks=MappingProxyType(tasks),
        failure_task=cls.failure_task,
        deadline=run_deadline(name, cls.deadline, cls.on_deadline, cls.deadline_reason, edges),
        instance=instance,
        machine=machine,
        schedules=declared_schedules(name, cls.schedules),
        business_key=key_function(name, cls.business_key),
    )


def check_options(
    where: str,
    *,
    retry: object = None,
    time_limit: float | None = None,
    queue: str | None = None,
    poll_limit: int | None = None,
    poll_deadline: timedelta | None = None,
) -> None:
    """Refuse option values that cannot work, naming the value and what is allowed."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise DefinitionError(f"{where}: retry must be a RetryPolicy; got {retry!r}")
    if time_limit is not None and not (isinstance(time_limit, int | float) and time_limit > 0):
        raise DefinitionError(
            f"{where}: time_limit must be a positive number of seconds; got {time_limit!r}"
        )
    if queue is not None and not (isinstance(queue, str) and queue.strip()):
        raise DefinitionError(f"{where}: queue must be a non-empty name; got {queue!r}")
    if poll_limit is not None and not (isinstance(poll_limit, int) and poll_limit >= 1):
        raise DefinitionError(
            f"{where}: poll_limit must be a whole number of at least 1; got {poll_limit!r}"
        )
    if poll_deadline is not None and not (
        isinstance(poll_deadline, timedelta) and poll_deadline > timedelta(0)
    ):
        raise DefinitionError(
            f"{where}: poll_deadline must be positive (seconds or a "
            f"timedelta); got {poll_deadline!r}"
        )


def _instantiate(cls: type[Any]) -> Any:
    try:
        return cls()
    except TypeError as error:
        raise DefinitionError(
            f"workflow class {cls.__name__} must be constructible without arguments: {error}"
        ) from None


def _bind(
    instance: Any, steps: Mapping[str, StepSpec], tasks: Mapping[str, TaskSpec]
) -> tuple[dict[str, StepSpec], dict[str, TaskSpec]]:
    """Handlers become bound methods of one instance of the workflow class."""
    cls = type(instance)

    def unbound(handler: Callable[..., Any]) -> Callable[..., Any]:
        return getattr(handler, "__func__", handler)

    def bound(spec: StepSpec) -> StepSpec:
        on_signal = spec.on_signal and unbound(spec.on_signal).__get__(instance, cls)
        return replace(
            spec, handler=unbound(spec.handler).__get__(instance, cls), on_signal=on_signal
        )

    return (
        {s: bound(spec) for s, spec in steps.items()},
        {
            t: replace(spec, handler=unbound(spec.handler).__get__(instance, cls))
            for t, spec in tasks.items()
        },
    )


def _collect_tasks(cls: type[Any], name: str) -> dict[str, TaskSpec]:
    tasks: dict[str, TaskSpec] = {}
    for value in _members(cls):
        spec: TaskSpec | None = getattr(value, "__statewright_task__", None)
        if spec is None:
            continue
        if not _NAME.match(spec.name) or spec.name in tasks:
            raise DefinitionError(
                f"workflow {name!r}: task name {spec.name!r} is not allowed or declared twice"
            )
        tasks[spec.name] = spec
    return tasks


def _check_tasks(
    name: str, tasks: Mapping[str, TaskSpec], states: set[str], failure_task: str | None
) -> None:
    for clash in sorted(set(tasks) & states):
        raise DefinitionError(
            f"workflow {name!r}: task {clash!r} has the name of a state; task names must differ"
        )
    if failure_task is not None and failure_task not in tasks:
        raise DefinitionError(
            f"workflow {name!r}: failure_task {failure_task!r} is not one of its tasks; "
            f"tasks: {', '.join(sorted(tasks)) or '(none)'}"
        )


def _no_handler(ctx: StepContext) -> Outcome:  # pragma: no cover - never called
    raise AssertionError("workflow defaults and waiting states have no step handler")


def _declared(cls: type[Workflow], attribute: str) -> Any:
    """An attribute declared by the class or a workflow class it extends."""
    for klass in _workflow_classes(cls)[::-1]:
        if attribute in vars(klass):
            return vars(klass)[attribute]
    raise DefinitionError(f"workflow class {cls.__name__} must declare {attribute!r}")


def _workflow_classes(cls: type[Any]) -> list[type]:
    """The workflow (or task group) classes ``cls`` is made of, base first."""
    bases = (Workflow, TaskGroup)
    return [k for k in reversed(cls.__mro__) if issubclass(k, bases) and k not in bases]


def _members(cls: type[Any]) -> list[Any]:
    """Attribute values of the class and of the workflow classes it extends (child wins)."""
    merged: dict[str, Any] = {}
    for klass in _workflow_classes(cls):
        merged.update(vars(klass))
    return list(merged.values())


def _collect_steps(cls: type[Workflow], name: str) -> dict[str, StepSpec]:
    steps: dict[str, StepSpec] = {}
    for value in _members(cls):
        fn = value.__func__ if isinstance(value, staticmethod) else value
        spec: StepSpec | None = getattr(fn, "__statewright_step__", None)
        if spec is None:
            continue
        if not _NAME.match(spec.state):
            raise DefinitionError(
                f"workflow {name!r}: state name {spec.state!r} is not allowed; "
                "use lowercase letters, digits and _"
            )
        if spec.state in steps:
            raise DefinitionError(f"workflow {name!r}: state {spec.state!r} has two handlers")
        steps[spec.state] = spec
    return steps


def _edges(name: str, table: Sequence[tuple[str, str, str]]) -> tuple[Edge, ...]:
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for row in table:
        if len(row) != 3 or not all(isinstance(part, str) for part in row):
            raise DefinitionError(
                f"workflow {name!r}: transition {row!r} must be (trigger, source, dest) strings"
            )
        edge = Edge(*row)
        if edge.trigger in ENGINE_EVENTS:
            raise DefinitionError(
                f"workflow {name!r}: trigger {edge.trigger!r} is reserved by the engine; "
                f"reserved: {', '.join(sorted(ENGINE_EVENTS))}"
            )
        if not _NAME.match(edge.trigger):
            raise DefinitionError(
                f"workflow {name!r}: trigger name {edge.trigger!r} is not allowed; "
                "use lowercase letters, digits and _"
            )
        if (edge.trigger, edge.source) in seen:
            raise DefinitionError(
                f"workflow {name!r}: trigger {edge.trigger!r} is declared twice from "
                f"{edge.source!r}; a trigger must lead to one state"
            )
        seen.add((edge.trigger, edge.source))
        edges.append(edge)
    return tuple(edges)


def _initial(name: str, steps: Mapping[str, StepSpec]) -> str:
    initial = [s.state for s in steps.values() if s.initial]
    if not initial:
        raise DefinitionError(
            f"workflow {name!r} has no initial state; mark one handler @step(initial=True)"
        )
    if len(initial) > 1:
        raise DefinitionError(
            f"workflow {name!r} has {len(initial)} initial states "
            f"({', '.join(map(repr, sorted(initial)))}); exactly one is allowed"
        )
    return initial[0]


def _check_states(
    name: str, steps: Mapping[str, StepSpec], terminal: frozenset[str], edges: Sequence[Edge]
) -> None:
    for state in sorted(terminal & set(steps)):
        raise DefinitionError(
            f"workflow {name!r}: terminal state {state!r} has a handler; terminal states have none"
        )
    known = set(steps) | terminal
    for edge in edges:
        for state in (edge.source, edge.dest):
            if state not in known:
                raise DefinitionError(
                    f"workflow {name!r}: state {state!r} (in transition {edge.trigger!r}) has "
                    f"no handler and is not terminal; states with handlers: "
                    f"{', '.join(sorted(steps)) or '(none)'}"
                )
        if edge.source in terminal:
            raise DefinitionError(
                f"workflow {name!r}: terminal state {edge.source!r} has a transition out "
                f"({edge.trigger!r}); terminal states end a run"
            )
    sources = {e.source for e in edges}
    for state in sorted(set(steps) - sources):
        raise DefinitionError(
            f"workflow {name!r}: state {state!r} is not terminal and has no transition out; "
            "declare a transition from it or make it terminal"
        )


def _check_reachable(
    name: str,
    initial: str,
    steps: Mapping[str, StepSpec],
    terminal: frozenset[str],
    edges: Sequence[Edge],
) -> None:
    reachable = _reachable(edges, initial, include_start=True)
    unreachable = sorted((set(steps) | terminal) - reachable)
    if unreachable:
        raise DefinitionError(
            f"workflow {name!r}: state(s) {', '.join(map(repr, unreachable))} cannot be "
            f"reached from the initial state {initial!r}"
        )
    if not terminal & reachable:
        raise DefinitionError(f"workflow {name!r}: no terminal state is reachable")


def _check_returned_triggers(
    name: str, steps: Mapping[str, StepSpec], edges: Sequence[Edge]
) -> None:
    """Triggers named in a handler's ``Literal[...]`` return type must be declared."""
    for spec in steps.values():
        declared = {e.trigger for e in edges if e.source == spec.state}
        for trigger in sorted(_literal_returns(spec.handler) - declared):
            raise DefinitionError(
                f"workflow {name!r}: handler of {spec.state!r} may return trigger {trigger!r}, "
                f"which is not declared from {spec.state!r}; declared: "
                f"{', '.join(map(repr, sorted(declared))) or '(none)'}"
            )


def _literal_returns(handler: Handler) -> set[str]:
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # an annotation we cannot resolve says nothing about triggers
        return set()
    found: set[str] = set()
    pending: list[Any] = [hints.get("return")]
    while pending:
        hint = pending.pop()
        if typing.get_origin(hint) is typing.Literal:
            found.update(a for a in typing.get_args(hint) if isinstance(a, str))
        else:
            pending.extend(typing.get_args(hint))
    return found


def _reachable(edges: Iterable[Edge], start: str, *, include_start: bool) -> frozenset[str]:
    seen: set[str] = {start} if include_start else set()
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for edge in edges:
            if edge.source == current and edge.dest not in seen:
                seen.add(edge.dest)
                queue.append(edge.dest)
    return frozenset(seen)


def _ordered_states(initial: str, edges: Sequence[Edge], states: set[str]) -> tuple[str, ...]:
    """States in breadth-first order from the initial state, as people read a workflow."""
    order = [initial]
    queue = deque([initial])
    while queue:
        current = queue.popleft()
        for edge in edges:
            if edge.source == current and edge.dest not in order:
                order.append(edge.dest)
                queue.append(edge.dest)
    return tuple(order) + tuple(sorted(states - set(order)))


def _version(
    name: str,
    initial: str,
    states: Sequence[str],
    terminal: frozenset[str],
    edges: Sequence[Edge],
) -> str:
    shape = {
        "name": name,
        "initial": initial,
        "states": sorted(states),
        "terminal": sorted(terminal),
        "edges": sorted([e.trigger, e.source, e.dest] for e in edges),
    }
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
    return digest[:16]
