"""Redriving a run that failed in a Map state: its failed items run again, not its Map.

The redrive's own transaction (``requeue``) locks the Map's row and marks each failed
item (those cancelled with their run included) ``queued``; the Map's counters forget
them: ``done`` and ``failed`` go down by as many, and so does ``started``, which then
trails ``next_offset`` (the items the source gave) by the items waiting to run again.
The run waits in the state as on its first visit; the fill starts the queued items,
by position, under the same ``concurrency`` bound before it asks the source for
anything more (``restart``), and the last item to finish dispatches the Map step,
which judges the tolerance again. Items that succeeded are kept and not run again.

A task item runs again as a fresh delivery (a fresh attempt budget; its writes
committed only if it succeeds, so its effect lands once). A child run's item is
redriven if its run failed; one whose run was cancelled (or is gone from a state its
workflow no longer has) gets a new run with the old one's params, keyed by the item
and the old run, so a fill tried again finds it instead of starting another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from statewright import lifecycle
from statewright.clock import Clock
from statewright.errors import IllegalOperationError
from statewright.fanout.tasks import item_task
from statewright.joins import Map
from statewright.metrics import Metrics
from statewright.models.children import WorkflowChild, WorkflowMap
from statewright.models.engine import WorkflowRun
from statewright.persistence import lock_run
from statewright.recorder import RunRecorder
from statewright.registry import Registry

if TYPE_CHECKING:
    from statewright.operations import Operations

log = structlog.get_logger("statewright.fanout")

#: A failed item a redrive will run again, waiting for room under the Map's bound.
QUEUED = "queued"
#: How a finished item that failed may have ended.
FAILED_ENDS = ("failed", "cancelled")


class MapRedrive:
    """Queues a redriven Map's failed items and starts them again as room allows."""

    def __init__(
        self,
        registry: Registry,
        recorder: RunRecorder,
        operations: Operations,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._registry = registry
        self._recorder = recorder
        self._operations = operations
        self._clock = clock
        self._metrics = metrics

    # -- the redrive ---------------------------------------------------------------

    def requeue(self, session: Session, run: WorkflowRun) -> int:
        """The locked ``run`` is being redriven: if it failed in a Map state, queue that
        visit's failed items to run again and take them off its counters, in the
        redrive's transaction; returns how many."""
        if self._registry.get(run.workflow).map_of(run.state) is None:
            return 0
        row = session.execute(
            select(WorkflowMap)
            .where(WorkflowMap.parent_run_id == run.id, WorkflowMap.visit == run.entry_seq)
            .with_for_update()
        ).scalar_one_or_none()
        if row is None:
            return 0
        queued = session.execute(
            update(WorkflowChild)
            .where(WorkflowChild.map_id == row.id, WorkflowChild.status.in_(FAILED_ENDS))
            .values(status=QUEUED, reason=None, result=None, attempts=0, finished_at=None)
            .execution_options(synchronize_session=False)
        )
        count = int(cast(CursorResult[Any], queued).rowcount or 0)
        if count:
            row.started -= count
            row.done -= count
            row.failed -= count
            row.finished_at = None
            session.flush()
            self._metrics.incr("map.items_redriven", value=count, tags={"state": row.state})
            log.info("Map items queued to run again", run=run.id, state=row.state, count=count)
        return count

    # -- the fill ------------------------------------------------------------------

    def restart(
        self, session: Session, parent: WorkflowRun, row: WorkflowMap, spec: Map, limit: int
    ) -> int:
        """Start up to ``limit`` of the Map's queued items, by position, in the fill's
        transaction (the Map's row locked); returns how many were started. A child item
        whose run finished meanwhile is counted as it ended."""
        links = list(
            session.execute(
                select(WorkflowChild)
                .where(WorkflowChild.map_id == row.id, WorkflowChild.status == QUEUED)
                .order_by(WorkflowChild.position)
                .limit(limit)
            ).scalars()
        )
        if not links:  # the counters said items wait, but none does: none is owed
            row.started = row.next_offset
            return 0
        for link in links:
            link.status = "running"
            if spec.each is None:
                self._restart_child(session, parent, row, link)
        row.started += len(links)
        if spec.each is not None:
            session.flush()
            task = item_task(parent.workflow, row.state, spec)
            for link in links:
                kwargs = {"item_id": link.id}
                self._recorder.enqueue(
                    session, task, kwargs=kwargs, run_id=parent.id, queue=row.queue
                )
        self._metrics.incr("map.restarted", value=len(links), tags={"workflow": parent.workflow})
        return len(links)

    def _restart_child(
        self, session: Session, parent: WorkflowRun, row: WorkflowMap, link: WorkflowChild
    ) -> None:
        """Run a child item again: redrive its failed run, else start a new one; a run
        someone already redrove is left to finish (or counted, if it has)."""
        child = lock_run(session, link.child_run_id) if link.child_run_id else None
        if child is not None and child.status == lifecycle.FAILED:
            try:
                self._operations.redrive_in(session, child)
                return
            except IllegalOperationError:
                pass  # its failed state is no longer in its workflow: a new run instead
        elif child is not None and child.status in lifecycle.ACTIVE:
            return  # redriven by hand meanwhile: its end counts, as a running item's does
        elif child is not None and child.status == lifecycle.SUCCEEDED:
            link.status, link.finished_at = "succeeded", self._clock.now()
            row.done += 1
            return
        if child is None:
            link.status, link.finished_at = "failed", self._clock.now()
            link.reason = "its child run is gone, so it cannot run again"
            row.done += 1
            row.failed += 1
            return
        detail = {"parent": parent.id, "parent_state": row.state, "map_item": link.position}
        key = f"map:{parent.id}:{row.visit}:{link.position}:after:{child.id}"
        started, _ = self._operations.start_in(
            session, link.workflow, dict(child.params), key, detail=detail
        )
        link.child_run_id = started.id
