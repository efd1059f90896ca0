"""The embedded worker: a real Celery worker inside the ``statewright`` process.

With no broker configured, the engine's Celery app uses the in-memory transport.
This worker consumes it in a thread, while a second thread runs the outbox relay
and the reaper. Durability comes from the database: on start, every running run
whose message was lost with the previous process is dispatched again, and so is
every task whose message was.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

import structlog
from celery.worker import WorkController

from statewright.api import Engine
from statewright.celery_app import silo_queues
from statewright.errors import StatewrightError
from statewright.maintenance import MaintenanceLoop

log = structlog.get_logger("statewright.embedded")


class _Controller(WorkController):
    """A work controller that says when its consumer is ready."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


class EmbeddedWorker:
    """Runs an engine's steps in this process until stopped.

    ``queues``: the queues to consume, by default those of this process's silo.
    ``only_run``: work for that run alone (``--wait``, ``runs wait``): its messages are
    the only ones relayed to this worker and its lease the only one reaped, so other
    pending runs keep waiting for a worker of their own instead of running here, under
    this process's settings.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float | None = None,
        queues: list[str] | None = None,
        only_run: str | None = None,
    ) -> None:
        self.engine = engine
        self.queues = queues or silo_queues(engine.celery, engine.settings.silo_mode)
        self.only_run = only_run
        self._interval = interval or engine.settings.relay_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._controller: _Controller | None = None

    def start(self, *, timeout: float = 30.0) -> EmbeddedWorker:
        # the in-memory transport has no host; kombu says so on every connection
        logging.getLogger("kombu.connection").setLevel(logging.ERROR)
        engine = self.engine
        engine.use_celery_publisher()
        recovered = engine.reaper.recover_all(only_run=self.only_run)
        if recovered:
            log.info("dispatched runs again after restart", runs=recovered)
        tasks = engine.deliveries.recover_all(only_run=self.only_run)
        if tasks:
            log.info("sending pending tasks again after restart", tasks=tasks)
        self._controller = _Controller(
            app=engine.celery,
            pool="solo",
            concurrency=1,
            queues=self.queues,
            hostname=f"embedded-{id(self)}@statewright",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        self._spawn(self._run_controller, "statewright-worker")
        if not self._controller.ready.wait(timeout):
            raise StatewrightError(f"the embedded worker did not start within {timeout}s")
        self._spawn(self._loop, "statewright-relay")
        log.info("embedded worker started", queues=self.queues)
        return self

    def stop(self, *, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._controller is not None:
            self._controller.stop(in_sighandler=False)
        for thread in self._threads:
            thread.join(timeout)
        self.engine.publisher = None
        log.info("embedded worker stopped")

    def wait(self) -> None:
        """Block until ``stop`` is called (from a signal handler, say)."""
        while not self._stop.wait(0.5):
            pass

    def _run_controller(self) -> None:
        # the solo pool traces tasks through the thread's current app
        self.engine.celery.set_current()
        assert self._controller is not None
        self._controller.start()

    def _loop(self) -> None:
        loop = MaintenanceLoop(self.engine, only_run=self.only_run)
        while not self._stop.wait(self._interval):
            loop.round()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def __enter__(self) -> EmbeddedWorker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
