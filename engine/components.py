"""The engine's parts and how they are wired: what ``Engine`` is built of.

``EngineParts`` builds, from explicit configuration, the database, clock, metrics,
registry, Celery app, outbox (dispatcher and relay), recorder, step executor,
timers, reaper, operations, child runs and Maps, schedules and retention, and
registers the engine's own tasks; it also holds what a process does with them
(a relay round, beat's schedule, a task's context, closing). ``statewright.api``'s
``Engine`` adds the operations and queries a caller uses.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

import structlog

from statewright.celery_app import (
    CeleryPublisher,
    StatewrightCelery,
    beat_schedule,
    build_celery,
    declared_queue,
    register_steps,
)
from statewright.children import Children
from statewright.clock import (
    Clock,
    DatabaseClock,
    Monotonic,
    SystemClock,
    VirtualClock,
    system_monotonic,
)
from statewright.config import Settings
from statewright.context import TaskContext
from statewright.definition import TaskSpec
from statewright.deliveries import TaskDeliveries, current_delivery
from statewright.dispatch import DEADLINE_TASK, Dispatcher, Publisher
from statewright.errors import UnknownStateError, UnknownTaskError
from statewright.execution import StepExecutor
from statewright.fairness import FairContinuation, broker_waiting
from statewright.fanout import Fanout, register_child_tasks
from statewright.hooks.step_logs import StepLogs
from statewright.hooks.step_metrics import StepMetrics
from statewright.hooks.step_sentry import StepSentry
from statewright.instrumentation import InstrumentedTask, bind_step
from statewright.metrics import (
    FanoutMetrics,
    Metrics,
    NullMetrics,
    PrometheusMetrics,
    StatsdMetrics,
)
from statewright.operations import Operations
from statewright.persistence import Database
from statewright.reaper import Reaper
from statewright.recorder import RunRecorder
from statewright.registry import (
    Registry,
    StepOptions,
    TaskOwner,
    WorkflowItem,
    as_definitions,
    load_workflow_modules,
)
from statewright.relay import OutboxRelay
from statewright.retention import Retention
from statewright.schedule_operations import ScheduleOperations
from statewright.scheduler import Scheduler
from statewright.step_events import StepObserver, StepObservers
from statewright.timers import Timers

#: Seconds a published outbox row waits to be deleted together with others (well under
#: the relay's grace of two seconds, after which it would be sent again).
OUTBOX_DELETE_DELAY = 0.25


class EngineParts:
    """The engine's parts, built once from ``settings`` and wired together.

    See ``Engine`` for the arguments; each ``_wire_*`` method builds one group of
    parts, in the order they depend on each other.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        workflows: Iterable[WorkflowItem] | None = None,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        observers: Sequence[StepObserver] = (),
        run_ids: Callable[[], str] | None = None,
        monotonic: Monotonic | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        #: How long a delivery has run is measured on it (``time.monotonic`` by default).
        self.monotonic: Monotonic = monotonic or system_monotonic
        self.db = Database(self.settings.database_url, ping_after=self.settings.db_ping_after)
        #: Leases and due times are told by the database's clock (see ``statewright.clock``).
        self.clock: Clock = engine_clock(clock, self.db)
        self.metrics: Metrics = metrics or metrics_from_settings(self.settings)
        self.registry = Registry(workflow_definitions(workflows, self.settings), self.settings)
        self._wire_messages()
        self._wire_steps(rng or random.Random(), observers)
        self._wire_runs(run_ids, clock)
        self._register_relay_task()
        self._register_deadline_task()

    def _wire_messages(self) -> None:
        """The Celery app, task deliveries, the outbox (dispatcher and relay), the
        recorder that writes runs and their messages, and the reaper of lost ones."""
        self.celery: StatewrightCelery = build_celery(self.settings, self.metrics)
        # a shared instrumented task's call, delay or apply_async uses the current app:
        # this engine's broker and silo mode, not Celery's default app
        self.celery.set_default()
        self.celery.set_current()
        self.deliveries = TaskDeliveries(
            self.db,
            self.clock,
            self.metrics,
            default_time_limit=self.settings.default_time_limit,
            lease_grace=self.settings.lease_grace,
        )
        self.celery.statewright_deliveries = self.deliveries
        #: Where committed messages go. Embedded engines publish only while their
        #: worker runs in this process; until then the worker's relay sends them.
        self.publisher: Publisher | None = (
            None if self.settings.embedded else CeleryPublisher(self.celery)
        )
        self.dispatcher = Dispatcher(
            self.db,
            self.clock,
            self.metrics,
            lambda: self.publisher,
            # on a real broker, published rows are deleted a few at a time, not one per step
            delete_delay=0.0 if self.settings.embedded else OUTBOX_DELETE_DELAY,
            dispatch_timeout=self.settings.dispatch_timeout,
        )
        self.relay = outbox_relay(self.db, self.dispatcher, self.clock, self.metrics, self.settings)
        self.recorder = RunRecorder(
            self.registry,
            self.dispatcher,
            self.settings,
            self.metrics,
            self._task_queue,
            store=self.db.runs,
        )
        self.reaper = Reaper(self.db, self.registry, self.recorder, self.clock, self.metrics)

    def _wire_steps(self, rng: random.Random, observers: Sequence[StepObserver]) -> None:
        """The step executor with its observers, the timers, and a Celery task per step."""
        #: Told what happens to each step: metrics, logs and Sentry, then ``observers``.
        self.step_observers = StepObservers(
            [StepMetrics(self.metrics), StepLogs(), StepSentry(), *observers]
        )
        self.executor = StepExecutor(
            self.db,
            self.registry,
            self.recorder,
            self.settings,
            self.clock,
            rng,
            self.step_observers,
            self.monotonic,
        )
        if self.publisher is not None and self.settings.continue_for > 0:
            # continue a run in process while no other message waits behind it
            self.executor.continuation.fairness = FairContinuation(
                broker_waiting(self.celery), self.settings.continue_when_busy, clock=self.monotonic
            )
        self.timers = Timers(
            self.db,
            self.registry,
            self.recorder,
            self.dispatcher,
            self.settings,
            self.clock,
            self.metrics,
        )
        register_steps(
            self.celery,
            self.registry,
            self._run_step,
            self._run_task,
            continue_for=self.settings.continue_for,
        )

    def _wire_runs(self, run_ids: Callable[[], str] | None, clock: Clock | None) -> None:
        """Operations on runs, child runs and Maps (and their tasks), schedules and
        retention. ``clock`` is the one given, if any: without one, fire times and
        retention cutoffs are judged by the database's clock."""
        self._operations = Operations(
            self.db, self.registry, self.recorder, self.clock, self.timers, run_ids
        )
        #: Child runs and Maps: started by steps, counted down where each one finishes.
        self.child_runs = Children(
            self.db, self.registry, self.recorder, self._operations, self.clock, self.metrics
        )
        self.fanout = Fanout(
            self.db,
            self.registry,
            self.recorder,
            self._operations,
            self.child_runs,
            self.clock,
            self.metrics,
        )
        self.child_runs.fanout = self.fanout
        self._operations.fanout = self.fanout
        self.recorder.children = self.child_runs
        register_child_tasks(
            self.celery,
            self.registry,
            self.child_runs,
            self.fanout,
            self.settings.default_queue,
            InstrumentedTask,
        )
        #: Cron schedules that start runs: ``engine.schedules.add(...)``, ``.pause(name)``…
        self.schedules = ScheduleOperations(
            self.db,
            self.registry,
            self._operations,
            Scheduler(self.db, self.registry, self._operations, self.metrics, clock),
        )
        self.retention = Retention(self.db, self.metrics, clock, keep=self.settings.retention)
        self._schedules_synced = False

    # -- the engine's own tasks and what they run --------------------------------

    def _run_step(self, step: StepOptions, run_id: str, token: int) -> None:
        """A step's message runs its step; a waiting state's is its timeout timer."""
        if step.wait is not None:
            self.timers.fire_timeout(step, run_id, token)
        else:
            self.executor.run_step(step, run_id, token)

    def _run_task(self, definition: TaskOwner, spec: TaskSpec, kwargs: dict[str, Any]) -> None:
        bind_step(workflow=definition.name)
        spec.handler(self.task_context(definition.name, spec.name), **kwargs)

    def _register_deadline_task(self) -> None:
        """``statewright.deadline``: a run's deadline timer, sent by the relay when due."""

        def run_deadline(run_id: str) -> None:
            bind_step(run=run_id)
            self.timers.fire_deadline(run_id)

        options: dict[str, Any] = {
            "name": DEADLINE_TASK,
            "base": InstrumentedTask,
            "shared": False,
            "task_queue": self.settings.default_queue,
        }
        self.celery.task(**options)(run_deadline)

    def _register_relay_task(self) -> None:
        """``statewright.relay``: one relay and reaper round, for running them under beat."""

        def relay_round() -> None:
            self.relay_round()

        options: dict[str, Any] = {
            "name": "statewright.relay",
            "base": InstrumentedTask,
            "shared": False,
            "expires": 30,
        }
        self.celery.task(**options)(relay_round)

    def _task_queue(self, task_name: str) -> str:
        if task_name not in self.celery.tasks:
            raise UnknownTaskError(task_name, self._enqueueable_tasks())
        return declared_queue(self.celery, task_name)

    def _enqueueable_tasks(self) -> list[str]:
        """The tasks a step may enqueue: workflows' tasks and imported instrumented tasks
        (not steps, Celery's own tasks or the engine's timers)."""
        steps = {step.task_name for step in self.registry.steps()}
        return sorted(
            name
            for name in self.celery.tasks
            if name not in steps and not name.startswith(("celery.", "statewright."))
        )

    # -- what a process does with the parts ----------------------------------------

    def beat_schedule(self) -> dict[str, dict[str, Any]]:
        """What Celery beat starts: scheduled tasks, and the relay with ``beat --relay``."""
        entries = beat_schedule(self.registry)
        if self.settings.beat_relay:
            entries["statewright.relay"] = {
                "task": "statewright.relay",
                "schedule": max(self.settings.relay_interval, 1.0),
            }
        return entries

    def relay_round(self, *, only_run: str | None = None) -> tuple[int, int]:
        """Send due outbox messages and re-dispatch expired leases (returns both counts),
        start the runs of due schedules, and apply the retention setting.

        ``only_run``: touch that run's messages and lease only (a process waiting for it);
        schedules and retention are then left to the relay.
        """
        sent = self.relay.drain(only_run=only_run)
        redispatched = self.reaper.run_once(only_run=only_run)
        if only_run is not None:
            return sent, redispatched
        if not self._schedules_synced:
            self.schedules.sync()
            self._schedules_synced = True
        self.schedules.fire_due()
        self.retention.run_if_due()
        return sent, redispatched

    def task_context(self, owner: str, task: str) -> TaskContext:
        """The context a task of ``owner`` (a workflow or task group) runs with."""
        spec = self.registry.task_owner(owner).tasks.get(task)
        if spec is None:
            raise UnknownStateError(f"{owner!r} has no task {task!r}")
        return TaskContext(
            workflow=owner,
            task=task,
            now=self.clock.now(),
            log=structlog.get_logger("statewright.task"),
            metrics=self.metrics,
            _transaction=self.db.transaction,
            _enqueue=self.recorder.enqueue,
            _store=self.db.runs,
            delivery=current_delivery(),
            _start=self._operations.start_in,
        )

    def use_celery_publisher(self) -> None:
        """Publish committed messages from this process (the embedded worker calls this)."""
        self.publisher = CeleryPublisher(self.celery)

    def close(self) -> None:
        self.dispatcher.flush_deletes()
        self.db.dispose()


def engine_clock(clock: Clock | None, db: Database) -> Clock:
    """A ``VirtualClock`` as it is (it stands for the database's clock too); any other
    clock (the system's by default) read through ``DatabaseClock``, so leases and timers
    follow the database's time whatever this machine's clock says."""
    if isinstance(clock, VirtualClock):
        return clock
    return DatabaseClock(clock or SystemClock(), db.now)


def workflow_definitions(
    workflows: Iterable[WorkflowItem] | None, settings: Settings
) -> list[TaskOwner]:
    """The workflows (and task groups) given, else those of ``settings.workflow_modules``."""
    if workflows is not None:
        return as_definitions(workflows)
    return load_workflow_modules(settings.workflow_modules)


def outbox_relay(
    db: Database, dispatcher: Dispatcher, clock: Clock, metrics: Metrics, settings: Settings
) -> OutboxRelay:
    """The relay that sends committed outbox rows: on a real broker it waits two seconds'
    grace for the committing process to publish them itself."""
    grace = timedelta(0) if settings.embedded else timedelta(seconds=2)
    return OutboxRelay(
        db,
        dispatcher,
        clock,
        metrics,
        batch=settings.relay_batch,
        grace=grace,
        dispatch_timeout=settings.dispatch_timeout,
    )


def metrics_from_settings(settings: Settings) -> Metrics:
    """statsd when ``STATEWRIGHT_STATSD_ADDR`` is set, Prometheus when the process serves
    ``--metrics-port``, else nothing."""
    backends: list[Metrics] = []
    if settings.statsd_addr is not None:
        backends.append(StatsdMetrics(*settings.statsd_addr))
    if settings.metrics_port is not None:
        backends.append(PrometheusMetrics())
    if not backends:
        return NullMetrics()
    return backends[0] if len(backends) == 1 else FanoutMetrics(*backends)
