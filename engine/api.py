"""The ``Engine``: one object, built from explicit configuration, that runs workflows."""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import structlog

from engine.celery_app import (
    CeleryPublisher,
    StatewrightCelery,
    beat_schedule,
    build_celery,
    register_steps,
)
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.context import TaskContext
from engine.definition import TaskSpec
from engine.dispatch import Dispatcher, Publisher
from engine.errors import StatewrightError, UnknownStateError
from engine.execution import StepExecutor
from engine.instrumentation import InstrumentedTask, bind_step
from engine.metrics import (
    FanoutMetrics,
    Metrics,
    NullMetrics,
    PrometheusMetrics,
    StatsdMetrics,
)
from engine.operations import Operations, Setup
from engine.persistence import Database
from engine.queries import (
    RunInfo,
    TransitionInfo,
    get_run,
    list_runs,
    resolve_run_id,
    run_history,
)
from engine.reaper import Reaper
from engine.recorder import RunRecorder
from engine.registry import (
    Registry,
    TaskOwner,
    WorkflowItem,
    as_definitions,
    load_workflow_modules,
)
from engine.relay import OutboxRelay
from engine.replay import ReplayedState, export_history, load_history, replay

#: Seconds a published outbox row waits to be deleted together with others (well under
#: the relay's grace of two seconds, after which it would be sent again).
OUTBOX_DELETE_DELAY = 0.25


class Engine:
    """Runs workflows: the operations API, the Celery app, the relay and the reaper.

    ``workflows`` defaults to the modules named by ``settings.workflow_modules``.
    ``clock``, ``metrics`` and ``rng`` are injectable so tests are deterministic.
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
        self.clock: Clock = clock or SystemClock()
        self.metrics: Metrics = metrics or metrics_from_settings(self.settings)
        definitions = (
            as_definitions(workflows)
            if workflows is not None
            else load_workflow_modules(self.settings.workflow_modules)
        )
        self.registry = Registry(definitions, self.settings)
        self.db = Database(self.settings.database_url)
        self.celery: StatewrightCelery = build_celery(self.settings, self.metrics)
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
        )
        self.recorder = RunRecorder(self.registry, self.dispatcher, self.settings, self.metrics)
        self.executor = StepExecutor(
            self.db,
            self.registry,
            self.recorder,
            self.settings,
            self.clock,
            self.metrics,
            rng or random.Random(),
        )
        register_steps(
            self.celery,
            self.registry,
            self.executor.run_step,
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
        )
        self.reaper = Reaper(self.db, self.registry, self.recorder, self.clock, self.metrics)
        self._operations = Operations(self.db, self.registry, self.recorder, self.clock)
        self._register_relay_task()

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
        """Send due outbox messages and re-dispatch expired leases; returns both counts.

        ``only_run``: touch that run's messages and lease only (a process waiting for it).
        """
        return self.relay.drain(only_run=only_run), self.reaper.run_once(only_run=only_run)

    # -- writes ------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        pause_at: str | None = None,
        setup: Setup | None = None,
    ) -> RunInfo:
        """Start a run of ``workflow``; the same ``idempotency_key`` returns the same run.

        ``setup(session, run_id)`` writes owning records in the run's own transaction.
        """
        return self._operations.start(
            workflow, params, idempotency_key=idempotency_key, pause_at=pause_at, setup=setup
        )

    def pause(self, run_id: str, *, at: str | None = None) -> RunInfo:
        """Pause now, or when the run reaches state ``at``."""
        return self._operations.pause(run_id, at=at)

    def resume(self, run_id: str) -> RunInfo:
        """Resume a paused run at the step where it stopped."""
        return self._operations.resume(run_id)

    def cancel(self, run_id: str) -> RunInfo:
        """Cancel at the next step boundary."""
        return self._operations.cancel(run_id)

    def abort(self, run_id: str, *, reason: str = "Aborted by an operator") -> RunInfo:
        """Fail the run now, fencing off the completion of a running step."""
        return self._operations.abort(run_id, reason=reason)

    def redrive(self, run_id: str) -> RunInfo:
        """Continue a failed run from its failed state with fresh attempts."""
        return self._operations.redrive(run_id)

    def signal(self, run_id: str, trigger: str, data: dict[str, Any] | None = None) -> RunInfo:
        """Fire ``trigger`` (declared from the run's state) from outside the workflow."""
        return self._operations.signal(run_id, trigger, data)

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

    def history(self, run_id: str) -> builtins.list[TransitionInfo]:
        """The run's history rows in order."""
        with self.db.reads() as session:
            return run_history(session, run_id)

    def export_history(self, run_id: str) -> dict[str, Any]:
        """The run's history as a JSON document for replay (``statewright runs export``)."""
        return export_history(self.get(run_id), self.history(run_id))

    def replay(self, run_id: str, *, until: int | None = None) -> ReplayedState:
        """Walk the run's history through the current definition (see ``engine.replay``)."""
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
