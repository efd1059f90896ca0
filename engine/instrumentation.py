"""Instrumented tasks: any Celery task, measured, tagged, logged and silo-limited.

``instrumented_task`` is a decorator like ``app.task``. The task object it makes is
an ordinary Celery task (every attribute kept) whose base class runs the hooks
around the body and checks silo limits on every way of calling it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery, Task, shared_task
from celery.canvas import Signature
from celery.exceptions import Retry

from statewright.deliveries import (
    DeliverySuperseded,
    TaskDeliveries,
    TaskDelivery,
    current_delivery,
    run_delivery,
)
from statewright.dispatch import DELIVERY_HEADER
from statewright.hooks import Hook, TaskCall
from statewright.hooks.logging import bind_log_fields, logging_context
from statewright.hooks.queue_time import queue_time
from statewright.hooks.sentry import sentry_scope, tag_scope
from statewright.hooks.timing import timing
from statewright.metrics import Metrics, NullMetrics
from statewright.silo import SiloMode, check_silo, normalize_modes, silo_queue

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
            body = functools.partial(super().__call__, *args, **kwargs)
            deliveries = process_deliveries(self.app)
            outbox_id = call.headers.get(DELIVERY_HEADER)
            if deliveries is None or not isinstance(outbox_id, int):
                return body()
            return self._deliver(deliveries, outbox_id, body)

    def _deliver(self, deliveries: TaskDeliveries, outbox_id: int, body: Callable[[], Any]) -> Any:
        """Run a delivery of a task dispatched through the outbox: claim its row first
        (a copy of a finished or running delivery is dropped here), settle it after."""
        attempts = None if self.max_retries is None else self.max_retries + 1
        delivery = deliveries.claim(
            outbox_id, self.name, time_limit=self.time_limit, max_attempts=attempts
        )
        if delivery is None:
            return None
        self.request.retries = delivery.attempt - 1  # Celery's retry limit counts every attempt
        bind_log_fields(delivery=outbox_id, attempt=delivery.attempt)
        return run_delivery(deliveries, delivery, body)

    def retry(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        exc: Exception | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's ``retry``; for a delivery through the outbox the next attempt is a
        durable timer on its row instead of a message with a countdown in the broker."""
        delivery = current_delivery()
        if delivery is None or delivery.task_name != self.name:
            return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
        return self._retry_delivery(delivery, args, kwargs, exc, throw, eta, countdown, max_retries)

    def _retry_delivery(
        self,
        delivery: TaskDelivery,
        args: Sequence[Any] | None,
        kwargs: dict[str, Any] | None,
        exc: Exception | None,
        throw: bool,
        eta: datetime | None,
        countdown: float | None,
        max_retries: int | None,
    ) -> Any:
        if isinstance(exc, DeliverySuperseded):
            raise exc
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and self.request.retries + 1 > limit:
            if exc is not None:
                raise exc
            raise self.MaxRetriesExceededError(
                f"Can't retry {self.name}[{self.request.id}]: {limit} retries spent"
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        deliveries = process_deliveries(self.app)
        assert deliveries is not None
        deliveries.retry_at(delivery, eta=eta, countdown=countdown, args=args, kwargs=kwargs)
        when: Any = eta if eta is not None else countdown
        signal = Retry(exc=exc, when=when, is_eager=self.request.is_eager)
        if throw:
            raise signal
        return signal

    def queue_name(self) -> str:
        """The queue this task's messages go to: its own, else the default queue of its
        silo (see ``silo_queue``)."""
        if self.task_queue is not None:
            return self.task_queue
        return silo_queue(str(self.app.conf.task_default_queue), self.silo_mode)

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        self.check_silo()
        if not kwargs.get("queue"):
            kwargs["queue"] = self.queue_name()
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
    from statewright.config import env_silo_mode

    return env_silo_mode()


def process_deliveries(app: Celery) -> TaskDeliveries | None:
    """The engine's delivery tracker of ``app`` (``None`` for an app no engine built)."""
    deliveries = getattr(app, "statewright_deliveries", None)
    return deliveries if isinstance(deliveries, TaskDeliveries) else None


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
