"""What a declaration freezes into: step and task specs, a workflow's ``Definition``
and a task group's ``TaskGroupDefinition``. Diagrams, replay and execution all read
these objects; nothing changes them once built."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from transitions import Machine

from statewright.business_key import KeyFunction
from statewright.definition.graph import Edge, Graph
from statewright.errors import DefinitionError
from statewright.joins import Map
from statewright.outcomes import Outcome
from statewright.retry import RetryPolicy
from statewright.schedule import Schedule
from statewright.silo import SiloMode
from statewright.waits import RunDeadline, Wait

if TYPE_CHECKING:
    from statewright.context import StepContext
    from statewright.definition.declaration import TaskGroup, Workflow

#: A bound handler: takes the step's context, returns a trigger or ``Poll``.
Handler = Callable[["StepContext"], Outcome]


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
    #: A join state: its step waits until the run's children have finished.
    join: bool = False
    #: A Map state: its items, and what its step (the engine's) decides at the end.
    map: Map | None = None


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
class Definition:
    """A validated, frozen workflow definition.

    Which moves are legal is answered by ``graph`` alone; ``machine`` is a
    ``transitions`` view of the same moves, built from it, for tools that want one.
    """

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
    graph: Graph = field(compare=False, repr=False)
    machine: Machine = field(compare=False, repr=False)
    #: Cron schedules that start runs of this workflow (see ``statewright.scheduler``).
    schedules: tuple[Schedule, ...] = field(default=(), compare=False, repr=False)
    #: The run's business key from its params (``statewright.business_key``), if declared.
    business_key: KeyFunction | None = field(compare=False, repr=False, default=None)
    #: What cancelling or aborting a run does to its children still running.
    child_policy: str = field(compare=False, repr=False, default="cancel")

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
        steps, tasks = bind_handlers(instance, self.steps, self.tasks)
        return replace(
            self, steps=MappingProxyType(steps), tasks=MappingProxyType(tasks), instance=instance
        )

    def is_terminal(self, state: str) -> bool:
        return state in self.terminal

    def wait(self, state: str) -> Wait | None:
        """The wait declared for ``state``, if it is a waiting state."""
        spec = self.steps.get(state)
        return spec.wait if spec is not None else None

    def holds(self, state: str) -> bool:
        """Whether a run entering ``state`` may wait there with no step message: a
        waiting state, a join state or a Map state."""
        spec = self.steps.get(state)
        return spec is not None and (spec.wait is not None or spec.join or spec.map is not None)

    def map_of(self, state: str) -> Map | None:
        """The Map declared for ``state``, if it is a Map state."""
        spec = self.steps.get(state)
        return spec.map if spec is not None else None

    def triggers_from(self, state: str) -> tuple[str, ...]:
        """The triggers declared from ``state``, sorted."""
        return self.graph.triggers_from(state)

    def destination(self, state: str, trigger: str) -> str | None:
        """Where ``trigger`` leads from ``state``, or ``None`` if that move is not declared."""
        return self.graph.destination(state, trigger)

    def ahead_of(self, state: str) -> frozenset[str]:
        """States reachable from ``state`` by one or more declared moves."""
        return frozenset(self.graph.ahead_of(state))


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
        _, tasks = bind_handlers(instance, {}, self.tasks)
        return replace(self, tasks=MappingProxyType(tasks), instance=instance)


def machine_of(initial: str, states: tuple[str, ...], graph: Graph) -> Machine:
    """The ``transitions`` machine of a validated graph (no automatic ``to_<state>`` moves)."""
    return Machine(
        model=None,
        states=list(states),
        initial=initial,
        auto_transitions=False,
        transitions=[
            {"trigger": e.trigger, "source": e.source, "dest": e.dest} for e in graph.edges
        ],
    )


def bind_handlers(
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
