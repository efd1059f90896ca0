"""Declaring a workflow: ``@step`` and ``@task`` methods on a ``Workflow`` or
``TaskGroup`` subclass, checked and frozen when the class is declared.

A workflow is a subclass of ``Workflow`` with a ``name``, a ``transitions`` table of
``(trigger, source, dest)``, ``terminal`` states, and one ``@step`` handler method per
non-terminal state. The class is instantiated once, when declared; handlers are
that instance's bound methods, so a workflow keeps no per-run state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from statewright.business_key import KeySource
from statewright.definition.build import build_definition, build_task_group
from statewright.definition.specs import Definition, StepSpec, TaskGroupDefinition, TaskSpec
from statewright.definition.validation import check_not_async, check_step_options
from statewright.joins import Map
from statewright.migrate import Migrations
from statewright.outcomes import Outcome
from statewright.retry import RetryPolicy
from statewright.schedule import Schedule
from statewright.silo import SiloMode, normalize_modes
from statewright.waits import Wait

if TYPE_CHECKING:
    from statewright.context import StepContext


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

    The method (a plain ``def``, not ``async def``) takes the ``StepContext`` and
    returns a trigger name or ``Poll``. ``state`` defaults to the method's name.
    ``reason`` is the sentence a person reads when the run fails in this state.
    """
    options = StepSpec(
        state=state or "",
        handler=_undeclared,
        initial=initial,
        retry=retry,
        time_limit=time_limit,
        queue=queue,
        silo_mode=normalize_modes(silo_mode),
        reason=reason,
        poll_limit=poll_limit,
        poll_deadline=_span(poll_deadline),
    )

    def mark(fn: Callable[[Any, StepContext], Outcome]) -> Any:
        check_not_async("@step", fn)
        check_step_options(f"@step of {fn.__qualname__}", options)
        spec = replace(options, state=state or fn.__name__, handler=fn)
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

    The method (a plain ``def``) takes a ``TaskContext`` and keyword arguments; it runs
    as the instrumented Celery task ``<owner>.<name>`` (``name`` defaults to the
    method's). ``schedule`` (a ``celery.schedules`` schedule) makes Celery beat start it.
    """

    def mark(fn: Callable[..., None]) -> Any:
        check_not_async("@task", fn)
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


def _span(value: timedelta | float | None) -> timedelta | None:
    """Seconds as a ``timedelta``; a ``timedelta`` (or anything else, refused later) as given."""
    return timedelta(seconds=value) if isinstance(value, int | float) else value


def _undeclared(ctx: StepContext) -> Outcome:  # pragma: no cover - replaced when marked
    raise AssertionError("a @step's handler is the method it marks")


class Workflow:
    """Base class of workflow declarations; subclasses are validated when declared."""

    #: Marks the base class itself (not its subclasses) for ``statewright.definition.build``.
    _statewright_base: ClassVar[bool] = True
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
    #: Name of one of the workflow's ``@task`` methods, enqueued with ``run_id=`` (and
    #: nothing else) in the same transaction that fails a run (see the README).
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
    #: The Alembic branch of the workflow's own tables, applied when it is registered.
    migrations: ClassVar[Migrations | None] = None
    #: Join states: each has a ``@step`` that runs once the run's children have finished.
    joins: ClassVar[Sequence[str]] = ()
    #: Map states by name: each fans out over items and moves when the last one finishes.
    maps: ClassVar[Mapping[str, Map]] = {}
    #: What cancelling or aborting a run does to its children still running:
    #: ``"cancel"`` them, ``"abort"`` them, or ``"leave"`` them running.
    child_policy: ClassVar[str] = "cancel"
    definition: ClassVar[Definition]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.definition = build_definition(cls)


class TaskGroup:
    """Base class of task groups: a ``name`` and ``@task`` methods, validated when declared."""

    #: Marks the base class itself (not its subclasses) for ``statewright.definition.build``.
    _statewright_base: ClassVar[bool] = True
    name: ClassVar[str]
    silo_mode: ClassVar[SiloMode | Iterable[SiloMode] | None] = None
    #: The Alembic branch of the group's own tables, applied when it is registered.
    migrations: ClassVar[Migrations | None] = None
    definition: ClassVar[TaskGroupDefinition]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.definition = build_task_group(cls)
