"""The Celery application of an engine, and one named task per workflow state."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from celery import Celery
from kombu import Queue

from statewright.config import Settings
from statewright.definition import TaskSpec
from statewright.deliveries import TaskDeliveries
from statewright.dispatch import TaskMessage
from statewright.errors import SiloLimitError
from statewright.instrumentation import HARD_LIMIT_MARGIN, InstrumentedTask
from statewright.metrics import Metrics
from statewright.registry import Registry, StepOptions, TaskOwner, task_queue
from statewright.silo import SiloMode, check_silo

log = structlog.get_logger("statewright.publish")

StepRunner = Callable[[StepOptions, str, int], None]
TaskRunner = Callable[[TaskOwner, TaskSpec, dict[str, Any]], None]


class StatewrightCelery(Celery):
    """A Celery app that knows its engine's silo mode and metrics."""

    statewright_silo_mode: SiloMode = SiloMode.MONOLITH
    statewright_metrics: Metrics | None = None
    statewright_deliveries: TaskDeliveries | None = None


def build_celery(settings: Settings, metrics: Metrics) -> StatewrightCelery:
    """A Celery app configured the statewright way: JSON only, late acks, no results."""
    app = StatewrightCelery("statewright", set_as_current=False)
    app.statewright_silo_mode = settings.silo_mode
    app.statewright_metrics = metrics
    app.conf.update(
        broker_url=settings.broker_url or "memory://",
        broker_connection_retry_on_startup=True,
        broker_transport_options=(
            {"polling_interval": 0.01} if settings.embedded else {"visibility_timeout": 3600}
        ),
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=settings.default_queue,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


def register_steps(
    app: Celery,
    registry: Registry,
    run_step: StepRunner,
    run_task: TaskRunner,
    *,
    continue_for: float = 0.0,
) -> None:
    """Register ``<workflow>.<state>`` for every handler and ``<workflow>.<task>`` for
    every workflow task, each with its own options.

    A step's delivery may go on to its run's next steps for ``continue_for`` seconds,
    so its time limits are the step's own plus that much (each step it continues to
    still gets its whole limit).
    """
    default = app.conf.task_default_queue
    for step in registry.steps():
        _register(app, step, run_step, continue_for)
    for definition, spec in registry.tasks():
        _register_task(app, definition, spec, run_task, default)
    queues = {s.queue for s in registry.steps()} | {default}
    queues |= {task_queue(owner, spec, default) for owner, spec in registry.tasks()}
    app.conf.task_queues = [Queue(name) for name in sorted(queues)]


def beat_schedule(registry: Registry) -> dict[str, dict[str, Any]]:
    """Celery beat's entries for the tasks that declare a schedule.

    A schedule given as a function (one that reads a setting) is called here, so only
    the processes that load the beat schedule read and check that setting.
    """
    entries: dict[str, dict[str, Any]] = {}
    for owner, spec in registry.tasks():
        if spec.schedule is None:
            continue
        schedule = spec.schedule() if callable(spec.schedule) else spec.schedule
        entries[owner.task_name(spec.name)] = {
            "task": owner.task_name(spec.name),
            "schedule": schedule,
        }
    return entries


def _register_task(
    app: Celery, definition: TaskOwner, spec: TaskSpec, run_task: TaskRunner, default: str
) -> None:
    def body(**kwargs: Any) -> None:
        run_task(definition, spec, kwargs)

    body.__name__ = f"{definition.name}_{spec.name}"
    body.__doc__ = f"Run task {spec.name!r} of workflow {definition.name!r}."
    options: dict[str, Any] = {
        "name": definition.task_name(spec.name),
        "base": InstrumentedTask,
        "task_queue": task_queue(definition, spec, default),
        "shared": False,
        "silo_mode": spec.silo_mode if spec.silo_mode is not None else definition.silo_mode,
        **spec.celery_options,
    }
    if spec.stat_suffix is not None:
        options["stat_suffix"] = staticmethod(spec.stat_suffix)
    if spec.time_limit is not None:
        options.update(
            time_limit=spec.time_limit + HARD_LIMIT_MARGIN, soft_time_limit=spec.time_limit
        )
    app.task(**options)(body)


def _register(app: Celery, step: StepOptions, run_step: StepRunner, continue_for: float) -> None:
    def body(run_id: str, token: int) -> None:
        run_step(step, run_id, token)

    body.__name__ = f"{step.workflow}_{step.state}"
    body.__doc__ = f"Run the {step.state!r} step of workflow {step.workflow!r}."
    options: dict[str, Any] = {
        "name": step.task_name,
        "base": InstrumentedTask,
        "task_queue": step.queue,
        "shared": False,
        "silo_mode": step.silo_mode,
        "time_limit": step.time_limit + continue_for + HARD_LIMIT_MARGIN,
        "soft_time_limit": step.time_limit + continue_for,
    }
    app.task(**options)(body)


class CeleryPublisher:
    """Publishes outbox messages to the app's broker, reusing one producer per batch."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def publish(self, messages: Sequence[TaskMessage]) -> int:
        sent = 0
        try:
            with self._app.producer_or_acquire() as producer:
                for message in messages:
                    self._app.send_task(
                        message.task_name,
                        args=list(message.args),
                        kwargs=message.kwargs,
                        headers=message.headers(time.time()),
                        producer=producer,
                        ignore_result=True,
                        queue=message.queue or declared_queue(self._app, message.task_name),
                        retries=message.attempts,
                    )
                    sent += 1
        except Exception as error:  # the broker is down or refused: the rest stay in the outbox
            log.warning(
                "publish failed; the relay will retry",
                error=repr(error),
                published=sent,
                pending=len(messages) - sent,
            )
        return sent


def declared_queue(app: Celery, task_name: str) -> str:
    """The queue a task of ``app`` declares (an instrumented task's own or its silo's),
    else the app's default queue."""
    task = app.tasks.get(task_name)
    if isinstance(task, InstrumentedTask):
        return task.queue_name()
    return str(app.conf.task_default_queue)


def silo_queues(app: Celery, mode: SiloMode) -> list[str]:
    """The queues a worker in silo ``mode`` consumes: the default queue and those of every
    task of ``app`` it may run (workflow steps and tasks, and the instrumented tasks this
    process imported). A monolith consumes them all."""
    found = {str(app.conf.task_default_queue)}
    for task in app.tasks.values():
        if not isinstance(task, InstrumentedTask):
            continue
        try:
            check_silo(task.name, task.silo_mode, mode)
        except SiloLimitError:
            continue
        found.add(task.queue_name())
    return sorted(found)
