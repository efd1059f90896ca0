"""The ``Engine``: one object, built from explicit configuration, that runs workflows.

Its parts and their wiring are ``statewright.components``' ``EngineParts``; the
``Engine`` adds what a caller does with runs: start and steer them, read them, and
enqueue tasks.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from statewright.children import ChildInfo, ParentLink, parent_of
from statewright.components import OUTBOX_DELETE_DELAY, EngineParts, metrics_from_settings
from statewright.deliveries import PendingTask
from statewright.errors import StatewrightError
from statewright.fanout import FailedItem, MapInfo, failed_items, maps_of
from statewright.operations import Deadline, Setup
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
from statewright.replay import ReplayedState, export_history, load_history, replay
from statewright.retention import DEFAULT_BATCH, PurgeResult


class Engine(EngineParts):
    """Runs workflows: the operations API, the Celery app, the relay and the reaper.

    ``Engine(settings=None, workflows=None, *, clock=None, metrics=None, rng=None,
    observers=(), run_ids=None, monotonic=None)``; its parts (``db``, ``registry``,
    ``celery``, ``recorder``, ``relay``, ``reaper``, ``schedules``...) are built by
    ``EngineParts``.

    ``workflows`` defaults to the modules named by ``settings.workflow_modules``.
    ``clock``, ``metrics``, ``rng``, ``run_ids`` (new runs' ids) and ``monotonic`` (the
    seconds a delivery measures its time limits on) are injectable so tests are
    deterministic. ``observers`` are told what happens to each step
    (``statewright.step_events``), after the engine's own metrics, logs and Sentry
    reports. A ``VirtualClock`` is used as it is (it stands for the database's clock
    too); any other clock is read through ``DatabaseClock``, so leases and timers follow
    the database's time whatever this machine's clock says.
    Fire times and retention cutoffs are judged by the database's clock too, unless a
    ``clock`` is given.
    """

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
        pause: float | None = None,
    ) -> PurgeResult:
        """Delete runs that finished more than ``older_than`` ago, and their history, in
        batches of ``batch`` runs (each its own transaction); running and paused runs
        are never touched. ``dry_run`` only counts. Between batches the purge waits
        ``pause`` seconds (``None``: as long as the batch took; 0: not at all)."""
        if workflow is not None:
            self.registry.get(workflow)
        return self.retention.purge(
            older_than, batch=batch, workflow=workflow, dry_run=dry_run, pause=pause
        )

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

    def children(self, run_id: str, *, limit: int = 1000) -> builtins.list[ChildInfo]:
        """The child runs ``run_id``'s steps started (not its Map items), oldest first."""
        with self.db.reads() as session:
            return self.child_runs.of(session, run_id, limit=limit)

    def parent(self, run_id: str) -> ParentLink | None:
        """The run that started ``run_id`` (as a child or a Map item), if one did."""
        with self.db.reads() as session:
            return parent_of(session, run_id)

    def maps(self, run_id: str) -> builtins.list[MapInfo]:
        """The run's Maps (one per visit to a Map state) with their counters."""
        with self.db.reads() as session:
            return maps_of(session, run_id)

    def failed_items(
        self, run_id: str, *, after: int = -1, limit: int = 100
    ) -> builtins.list[FailedItem]:
        """The failed items of the run's latest Map with their reasons, by position,
        from position ``after`` on (pages: pass the last position seen)."""
        with self.db.reads() as session:
            return failed_items(session, run_id, after=after, limit=limit)

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


__all__ = ["OUTBOX_DELETE_DELAY", "Engine", "metrics_from_settings"]
