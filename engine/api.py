"""The ``Engine``: one object, built from explicit configuration, that runs workflows."""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from statewright.celery_app import (
    CeleryPublisher,
    StatewrightCelery,
    beat_schedule,
    build_celery,
    declared_queue,
    register_steps,
)
from statewright.clock import Clock, DatabaseClock, SystemClock, VirtualClock
from statewright.config import Settings
from statewright.context import TaskContext
from statewright.definition import TaskSpec
from statewright.deliveries import PendingTask, TaskDeliveries, current_delivery
from statewright.dispatch import DEADLINE_TASK, Dispatcher, Publisher
from statewright.errors import StatewrightError, UnknownStateError, UnknownTaskError
from statewright.execution import StepExecutor
from statewright.instrumentation import InstrumentedTask, bind_step
from statewright.metrics import (
    FanoutMetrics,
    Metrics,
    NullMetrics,
    PrometheusMetrics,
    StatsdMetrics,
)
from statewright.operations import Deadline, Operations, Setup
from statewright.persistence import Database
from statewright.queries import (
    RunFilter,
    RunInfo,
    RunPage,
    RunWait,
    TransitionInfo,
    count_by_status,
    get_run,
    list_runs,
    resolve_run_id,
    run_history,
    run_wait,
    search_runs,
)
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
from statewright.replay import ReplayedState, export_history, load_history, replay
from statewright.retention import DEFAULT_BATCH, PurgeResult, Retention
from statewright.schedule_operations import ScheduleOperations
from statewright.scheduler import Scheduler
from statewright.timers import Timers

#: Seconds a published outbox row waits to be deleted together with others (well under
#: the relay's grace of two seconds, after which it would be sent again).
OUTBOX_DELETE_DELAY = 0.25


class Engine:
    """Runs workflows: the operations API, the Celery app, the relay and the reaper.

    ``workflows`` defaults to the modules named by ``settings.workflow_modules``.
    ``clock``, ``metrics`` and ``rng`` are injectable so tests are deterministic. A
    ``VirtualClock`` is used as it is (it stands for the database's clock too); any
    other clock is read through ``DatabaseClock``, so leases and timers follow the
    database's time whatever this machine's clock says.
    Fire times and retention cutoffs are judged by the database's clock too, unless a
    ``clock`` is given.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        workflows: Iterable[WorkflowItem] | None = None,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.db = Database(self.settings.database_url)
        #: Leases and due times are told by the database's clock (see ``statewright.clock``).
        self.clock: Clock = (
            clock
            if isinstance(clock, VirtualClock)
            else DatabaseClock(clock or SystemClock(), self.db.now)
        )
        self.metrics: Metrics = metrics or metrics_from_settings(self.settings)
        definitions = (
            as_definitions(workflows)
            if workflows is not None
            else load_workflow_modules(self.settings.workflow_modules)
        )
        self.registry = Registry(definitions, self.settings)
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
        self.recorder = RunRecorder(
            self.registry, self.dispatcher, self.settings, self.metrics, self._task_queue
        )
        self.executor = StepExecutor(
            self.db,
            self.registry,
            self.recorder,
            self.settings,
            self.clock,
            self.metrics,
            rng or random.Random(),
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
        grace = timedelta(0) if self.settings.embedded else timedelta(seconds=2)
        self.relay = OutboxRelay(
            self.db,
            self.dispatcher,
            self.clock,
            self.metrics,
            batch=self.settings.relay_batch,
            grace=grace,
            dispatch_timeout=self.settings.dispatch_timeout,
        )
        self.reaper = Reaper(self.db, self.registry, self.recorder, self.clock, self.metrics)
        self._operations = Operations(
            self.db, self.registry, self.recorder, self.clock, self.timers
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
        self._register_relay_task()
        self._register_deadline_task()

    def _run_step(self, step: StepOptions, run_id: str, token: int) -> None:
        """A step's message runs its step; a waiting state's is its timeout timer."""
        if step.wait is not None:
            self.timers.fire_timeout(step, run_id, token)
        else:
            self.executor.run_step(step, run_id, token)

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

    # -- writes ------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        pause_at: str | None = None,
        setup: Setup | None = None,
        deadline: Deadline | None = None,
    ) -> RunInfo:
        """Start a run of ``workflow``; the same ``idempotency_key`` returns the same run.

        ``setup(session, run_id)`` writes owning records in the run's own transaction.
        ``deadline`` (seconds or a timedelta from now, or an aware datetime) bounds the
        whole run, if earlier than the workflow's own deadline.
        """
        return self._operations.start(
            workflow,
            params,
            idempotency_key=idempotency_key,
            pause_at=pause_at,
            setup=setup,
            deadline=deadline,
        )

    def pause(self, run_id: str, *, at: str | None = None) -> RunInfo:
        """Pause now, or when the run reaches state ``at``."""
        return self._operations.pause(run_id, at=at)

    def resume(self, run_id: str) -> RunInfo:
        """Resume a paused run at the step where it stopped, with a fresh attempt budget."""
        return self._operations.resume(run_id)

    def cancel(self, run_id: str, *, at: str | None = None) -> RunInfo:
        """Cancel at the next step boundary, or when the run reaches state ``at``; a
        cancelled run stays as it is."""
        return self._operations.cancel(run_id, at=at)

    def clear_pause(self, run_id: str) -> RunInfo:
        """Forget a pause scheduled (now or at a state ahead) but not yet applied."""
        return self._operations.clear_pause(run_id)

    def abort(self, run_id: str, *, reason: str = "Aborted by an operator") -> RunInfo:
        """Fail the run now, fencing off the completion of a running step."""
        return self._operations.abort(run_id, reason=reason)

    def redrive(self, run_id: str) -> RunInfo:
        """Continue a failed run from its failed state with fresh attempts."""
        return self._operations.redrive(run_id)

    def signal(self, run_id: str, trigger: str, data: dict[str, Any] | None = None) -> RunInfo:
        """Fire ``trigger`` (declared from the run's state) from outside the workflow.

        A waiting state's signal handler receives ``data``; a paused run keeps the
        signal until it resumes; a signal that lost the race to a timeout raises
        ``SignalTooLateError``.
        """
        return self._operations.signal(run_id, trigger, data)

    def purge(
        self,
        older_than: timedelta,
        *,
        batch: int = DEFAULT_BATCH,
        workflow: str | None = None,
        dry_run: bool = False,
    ) -> PurgeResult:
        """Delete runs that finished more than ``older_than`` ago, and their history, in
        batches of ``batch`` runs (each its own transaction); running and paused runs
        are never touched. ``dry_run`` only counts."""
        if workflow is not None:
            self.registry.get(workflow)
        return self.retention.purge(older_than, batch=batch, workflow=workflow, dry_run=dry_run)

    # -- reads -------------------------------------------------------------------

    def get(self, run_id: str) -> RunInfo:
        """The run with this id; ``RunNotFoundError`` if there is none."""
        with self.db.reads() as session:
            return get_run(session, run_id)

    def list(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        key: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> builtins.list[RunInfo]:
        """Runs, newest first, optionally of one workflow, one status and one business key;
        ``after`` (the last id of a page) gives the page that follows."""
        if workflow is not None:
            self.registry.get(workflow)
        with self.db.reads() as session:
            return list_runs(
                session, workflow=workflow, status=status, key=key, after=after, limit=limit
            )

    def resolve_run_id(self, text: str) -> str:
        """The whole id of the run ``text`` names: its id, or a unique prefix of it (at
        least four characters); ``RunNotFoundError`` or ``AmbiguousRunIdError`` if not."""
        with self.db.reads() as session:
            return resolve_run_id(session, text)

    def search(
        self, filters: RunFilter | None = None, *, after: str | None = None, limit: int = 50
    ) -> RunPage:
        """Runs matching ``filters``, newest first, a keyset page at a time (see ``RunPage``)."""
        filters = filters or RunFilter()
        if filters.workflow is not None:
            self.registry.get(filters.workflow)
        with self.db.reads() as session:
            return search_runs(session, filters, after=after, limit=limit)

    def status_counts(self, filters: RunFilter | None = None) -> dict[str, int]:
        """How many runs match ``filters``, by status (the filter's own status ignored)."""
        with self.db.reads() as session:
            return count_by_status(session, filters or RunFilter())

    def waiting(self, run_id: str) -> RunWait:
        """Whether the run's next step is claimed, or when its message is due."""
        with self.db.reads() as session:
            return run_wait(session, run_id)

    def history(self, run_id: str) -> builtins.list[TransitionInfo]:
        """The run's history rows in order."""
        with self.db.reads() as session:
            return run_history(session, run_id)

    def export_history(self, run_id: str) -> dict[str, Any]:
        """The run's history as a JSON document for replay (``statewright runs export``)."""
        return export_history(self.get(run_id), self.history(run_id))

    def replay(self, run_id: str, *, until: int | None = None) -> ReplayedState:
        """Walk the run's history through the current definition (see ``statewright.replay``)."""
        document = self.export_history(run_id)
        recorded = load_history(document, f"run {run_id}")
        return replay(self.registry.get(recorded.workflow), recorded, until=until)

    def wait(self, run_id: str, *, timeout: float = 60.0, interval: float = 0.05) -> RunInfo:
        """Block until the run finishes or pauses (real time); returns it as it then stands."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.get(run_id)
            if info.finished or info.status == "paused":
                return info
            if time.monotonic() > deadline:
                raise StatewrightError(
                    f"run {run_id} still {info.status} in state {info.state!r} after {timeout}s"
                )
            time.sleep(interval)

    def enqueue(
        self, session: Session, task: str, kwargs: dict[str, Any], *, run_id: str | None = None
    ) -> None:
        """Dispatch ``task`` (a workflow task ``<workflow>.<task>`` or any instrumented task)
        after ``session`` commits, on the task's own queue. It is owed one complete
        execution: its outbox row stays until it finishes or gives up. ``run_id`` ties it
        to a run (``--wait`` and the demo wait for a run's tasks)."""
        self.recorder.enqueue(session, task, kwargs=kwargs, run_id=run_id)

    def pending_tasks(self, run_id: str) -> builtins.list[PendingTask]:
        """Tasks dispatched by ``run_id``'s steps (or by their tasks) not yet finished."""
        return self.deliveries.pending(run_id)

    def wait_for_tasks(
        self,
        run_id: str,
        *,
        timeout: float = 600.0,
        interval: float = 0.2,
        progress: Callable[[builtins.list[PendingTask]], None] | None = None,
    ) -> builtins.list[PendingTask]:
        """Block until the tasks ``run_id`` dispatched have finished (or given up), at most
        ``timeout`` seconds; returns those still pending (empty when all are done)."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self.pending_tasks(run_id)
            if progress is not None:
                progress(pending)
            if not pending or time.monotonic() >= deadline:
                return pending
            time.sleep(interval)

    def _task_queue(self, task_name: str) -> str:
        if task_name not in self.celery.tasks:
            raise UnknownTaskError(
                f"no task named {task_name!r} is registered with this engine: neither a "
                "workflow's @task nor an instrumented_task imported in this process"
            )
        return declared_queue(self.celery, task_name)

    def _run_task(self, definition: TaskOwner, spec: TaskSpec, kwargs: dict[str, Any]) -> None:
        bind_step(workflow=definition.name)
        spec.handler(self.task_context(definition.name, spec.name), **kwargs)

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
            _postgresql=not self.db.is_sqlite,
            delivery=current_delivery(),
        )

    def use_celery_publisher(self) -> None:
        """Publish committed messages from this process (the embedded worker calls this)."""
        self.publisher = CeleryPublisher(self.celery)

    def close(self) -> None:
        self.dispatcher.flush_deletes()
        self.db.dispose()


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
