"""Instrumented tasks: any Celery task, measured, tagged, logged and silo-limited.

``instrumented_task`` is a decorator like ``app.task``. The task object it makes is
an ordinary Celery task (every attribute kept) whose base class runs the hooks
around the body and checks silo limits on every way of calling it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery, Task, shared_task
from celery.canvas import Signature

from engine.hooks import Hook, TaskCall
from engine.hooks.logging import bind_log_fields, logging_context
from engine.hooks.queue_time import queue_time
from engine.hooks.sentry import sentry_scope, tag_scope
from engine.hooks.timing import timing
from engine.metrics import Metrics, NullMetrics
from engine.silo import SiloMode, check_silo, normalize_modes

#: Seconds between a task's soft time limit (an exception in the task) and its hard one
#: (the pool kills the process); leases outlast both.
HARD_LIMIT_MARGIN = 5.0

#: Hooks in the order they are entered around a task body.
DEFAULT_HOOKS: tuple[Hook, ...] = (logging_context, sentry_scope, timing, queue_time)

F = TypeVar("F", bound=Callable[..., Any])


if TYPE_CHECKING:
    _TaskBase = Task[Any, Any]
else:
    _TaskBase = Task


class InstrumentedTask(_TaskBase):
    """Base class of every statewright task."""

    #: Silo modes the task may be called and run in; ``None`` means anywhere.
    silo_mode: frozenset[SiloMode] | None = None
    #: Appended to the metric instance, e.g. per batch: ``(args, kwargs) -> suffix``.
    stat_suffix: Callable[..., str] | None = None
    record_timing: bool = True
    #: Queue used when a call does not name one (Celery's ``queue`` attribute is deprecated).
    task_queue: str | None = None
    hooks: tuple[Hook, ...] = DEFAULT_HOOKS
    ignore_result = True
    acks_late = True
    reject_on_worker_lost = True
    serializer = "json"

    def check_silo(self) -> None:
        """Raise ``SiloLimitError`` if this process's silo mode may not use this task."""
        check_silo(self.name, self.silo_mode, process_silo_mode(self.app))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.check_silo()
        request = self.request
        call = TaskCall(
            name=self.name,
            instance=self._instance(args, kwargs),
            task_id=request.id,
            headers=_headers(request),
            metrics=process_metrics(self.app),
            record_timing=self.record_timing,
        )
        with ExitStack() as stack:
            for hook in self.hooks:
                stack.enter_context(hook(call))
            return super().__call__(*args, **kwargs)

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        self.check_silo()
        if self.task_queue is not None and not kwargs.get("queue"):
            kwargs["queue"] = self.task_queue
        return super().apply_async(*args, **kwargs)

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        self.check_silo()
        return super().apply(*args, **kwargs)

    def signature(self, *args: Any, **kwargs: Any) -> Signature:
        self.check_silo()
        return super().signature(*args, **kwargs)

    subtask = signature  # Celery's alias points at its own method otherwise

    def _instance(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        suffix = self.stat_suffix
        if suffix is None:
            return str(self.name)
        return f"{self.name}.{suffix(*args, **kwargs)}"


def instrumented_task(
    name: str,
    *,
    queue: str | None = None,
    silo_mode: SiloMode | Iterable[SiloMode] | None = None,
    stat_suffix: Callable[..., str] | None = None,
    record_timing: bool = True,
    app: Celery | None = None,
    **celery_options: Any,
) -> Callable[[F], InstrumentedTask]:
    """Declare an instrumented Celery task (on ``app``, or shared by every app)."""
    options: dict[str, Any] = {
        "name": name,
        "base": InstrumentedTask,
        "silo_mode": normalize_modes(silo_mode),
        "record_timing": record_timing,
        **celery_options,
    }
    if stat_suffix is not None:
        options["stat_suffix"] = staticmethod(stat_suffix)
    if queue is not None:
        options["task_queue"] = queue

    def declare(fn: F) -> InstrumentedTask:
        factory = app.task(shared=False, **options) if app is not None else shared_task(**options)
        task: InstrumentedTask = factory(fn)
        return task

    return declare


def bind_step(**fields: Any) -> None:
    """Tag logs and Sentry events for the rest of the task (workflow, run, state, ...)."""
    bind_log_fields(**fields)
    tag_scope(**fields)


def process_silo_mode(app: Celery) -> SiloMode:
    mode = getattr(app, "statewright_silo_mode", None)
    if isinstance(mode, SiloMode):
        return mode
    from engine.config import env_silo_mode

    return env_silo_mode()


def process_metrics(app: Celery) -> Metrics:
    metrics = getattr(app, "statewright_metrics", None)
    return metrics if metrics is not None else NullMetrics()


def _headers(request: Any) -> dict[str, Any]:
    """Custom message headers: Celery keeps them on the request itself."""
    found: dict[str, Any] = {}
    nested = getattr(request, "headers", None)
    if isinstance(nested, dict):
        found.update(nested)
    for key, value in vars(request).items():
        if key.startswith("statewright_"):
            found[key] = value
    return found
