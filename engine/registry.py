"""The workflows an engine knows, and each step's options resolved in one place.

Options resolve call > state > workflow > engine defaults; the result is a frozen
``StepOptions`` per state, computed once when the engine is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType, ModuleType
from typing import TypeVar

from statewright.config import Settings
from statewright.definition import (
    Definition,
    Handler,
    TaskGroup,
    TaskGroupDefinition,
    TaskSpec,
    Workflow,
)
from statewright.errors import (
    ConfigurationError,
    DefinitionError,
    UnknownStateError,
    UnknownWorkflowError,
)
from statewright.retry import RetryPolicy
from statewright.silo import SiloMode, silo_queue
from statewright.waits import SignalHandler, Wait


@dataclass(frozen=True, slots=True)
class StepOptions:
    """Everything the engine needs to run one state's handler."""

    workflow: str
    state: str
    task_name: str
    handler: Handler
    retry: RetryPolicy
    time_limit: float
    queue: str
    silo_mode: frozenset[SiloMode] | None
    reason: str
    poll_limit: int | None
    poll_deadline: timedelta | None
    #: Set for a waiting state, whose task fires its timeout instead of running a step.
    wait: Wait | None = None
    on_signal: SignalHandler | None = None


def resolve_step(definition: Definition, state: str, settings: Settings) -> StepOptions:
    """The options of ``state``: its own, else the workflow's, else the engine's."""
    spec = definition.steps[state]
    base = definition.defaults
    silo_mode = spec.silo_mode if spec.silo_mode is not None else base.silo_mode
    return StepOptions(
        workflow=definition.name,
        state=state,
        task_name=definition.task_name(state),
        handler=spec.handler,
        retry=_first(spec.retry, base.retry, settings.default_retry),
        time_limit=_first(spec.time_limit, base.time_limit, settings.default_time_limit),
        queue=_first(spec.queue, base.queue, silo_queue(settings.default_queue, silo_mode)),
        silo_mode=silo_mode,
        reason=spec.reason or f"The {definition.name} run failed while {state.replace('_', ' ')}",
        poll_limit=spec.poll_limit,
        poll_deadline=spec.poll_deadline,
        wait=spec.wait,
        on_signal=spec.on_signal,
    )


T = TypeVar("T")


def task_queue(owner: TaskOwner, spec: TaskSpec, default: str) -> str:
    """A workflow task's queue: its own, else the default queue of its silo."""
    modes = spec.silo_mode if spec.silo_mode is not None else owner.silo_mode
    return spec.queue or silo_queue(default, modes)


def _first(*choices: T | None) -> T:
    """The first option that is set (``0`` counts as set; ``None`` does not)."""
    for choice in choices:
        if choice is not None:
            return choice
    raise AssertionError("engine defaults are always set")


TaskOwner = Definition | TaskGroupDefinition


class Registry:
    """Workflow definitions and task groups by name, with their resolved step options."""

    def __init__(self, definitions: Iterable[TaskOwner], settings: Settings) -> None:
        by_name: dict[str, Definition] = {}
        groups: dict[str, TaskGroupDefinition] = {}
        for item in definitions:
            known = by_name.get(item.name) or groups.get(item.name)
            if known is not None and known is not item:
                raise DefinitionError(f"two workflows or task groups are named {item.name!r}")
            if isinstance(item, TaskGroupDefinition):
                groups[item.name] = item
            else:
                by_name[item.name] = item
        self.definitions: Mapping[str, Definition] = MappingProxyType(by_name)
        self.groups: Mapping[str, TaskGroupDefinition] = MappingProxyType(groups)
        self._steps = {
            (d.name, state): resolve_step(d, state, settings)
            for d in by_name.values()
            for state in d.steps
        }

    def get(self, name: str) -> Definition:
        """The definition named ``name``; ``UnknownWorkflowError`` names the known ones."""
        try:
            return self.definitions[name]
        except KeyError:
            raise UnknownWorkflowError(name, self.definitions) from None

    def step(self, workflow: str, state: str) -> StepOptions:
        """The options of ``state``'s step; an error names the states that have one."""
        try:
            return self._steps[(workflow, state)]
        except KeyError:
            known = sorted(self.get(workflow).steps)
            raise UnknownStateError(
                f"workflow {workflow!r} has no step for state {state!r}; states with steps: "
                f"{', '.join(known)}"
            ) from None

    def has_step(self, workflow: str, state: str) -> bool:
        return (workflow, state) in self._steps

    def steps(self) -> Iterable[StepOptions]:
        return self._steps.values()

    def tasks(self) -> Iterable[tuple[TaskOwner, TaskSpec]]:
        """Every task of a workflow or task group, with its owner."""
        owners: list[TaskOwner] = [*self.definitions.values(), *self.groups.values()]
        return [(owner, spec) for owner in owners for spec in owner.tasks.values()]

    def task_spec(self, task_name: str) -> tuple[TaskOwner, TaskSpec] | None:
        """The workflow task named ``<owner>.<task>`` with its owner, or ``None``."""
        owner_name, _, name = task_name.partition(".")
        owner = self.definitions.get(owner_name) or self.groups.get(owner_name)
        spec = owner.tasks.get(name) if owner is not None else None
        return None if owner is None or spec is None else (owner, spec)

    def task_owner(self, name: str) -> TaskOwner:
        """The workflow or task group named ``name``."""
        found = self.definitions.get(name) or self.groups.get(name)
        if found is None:
            raise UnknownWorkflowError(name, [*self.definitions, *self.groups])
        return found


WorkflowItem = (
    type[Workflow] | Workflow | Definition | type[TaskGroup] | TaskGroup | TaskGroupDefinition
)


def as_definitions(items: Iterable[WorkflowItem]) -> list[TaskOwner]:
    """Definitions of classes, of configured instances (bound to them), or as given."""
    found: list[TaskOwner] = []
    for item in items:
        if isinstance(item, Definition | TaskGroupDefinition):
            found.append(item)
        elif isinstance(item, Workflow):
            found.append(type(item).definition.bound_to(item))
        elif isinstance(item, TaskGroup):
            group: TaskGroupDefinition = type(item).definition
            found.append(group.bound_to(item))
        else:
            found.append(item.definition)
    return found


def load_workflow_modules(modules: Iterable[str]) -> list[TaskOwner]:
    """Import ``modules`` and collect the workflows and task groups declared in them."""
    found: list[TaskOwner] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise ConfigurationError(
                f"STATEWRIGHT_WORKFLOWS names module {name!r}, which cannot be imported: {error}"
            ) from error
        found.extend(d for d in _declared_in(module) if d not in found)
    return found


def _declared_in(module: ModuleType) -> list[TaskOwner]:
    exported = getattr(module, "WORKFLOWS", None)
    if exported is not None:
        return as_definitions(exported)
    return [
        value.definition
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Workflow | TaskGroup)
        and value not in (Workflow, TaskGroup)
    ]
