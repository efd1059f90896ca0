"""Counting a Map's items as they finish, each in its own completing transaction.

``UPDATE workflow_maps SET done = done + 1 ... RETURNING``: the item that makes
``done == started`` with the source exhausted (and no failed item queued by a redrive
waiting to start again) releases the parent's Map step in that
same transaction; an item that leaves room for a page asks for the next fill.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from statewright.children import Children
from statewright.clock import Clock
from statewright.fanout.tasks import FILL_TASK
from statewright.metrics import Metrics
from statewright.models.children import WorkflowMap
from statewright.recorder import RunRecorder


class MapJoin:
    """Counts each finished item, joins on the last, and asks for fills."""

    def __init__(
        self, recorder: RunRecorder, children: Children, clock: Clock, metrics: Metrics
    ) -> None:
        self._recorder = recorder
        self._children = children
        self._clock = clock
        self._metrics = metrics

    def item_finished(self, session: Session, map_id: int, *, failed: bool) -> None:
        """Count one finished item in its own completing transaction; the last one
        dispatches the parent's Map step, one that leaves room asks for a fill."""
        row = self._count(session, map_id, failed)
        if row is None:
            return
        if row.exhausted and row.done == row.started == row.next_offset:
            self._set(session, map_id, finished_at=self._clock.now())
            self._metrics.incr("map.joined", tags={"state": row.state})
            self._children.release(session, row.parent_run_id, row.state, row.visit)
            return
        room = row.concurrency - (row.started - row.done)
        more = not row.exhausted or row.started < row.next_offset  # (``reading.has_more``)
        if more and not row.filling and room >= _low_water(row.concurrency):
            self._set(session, map_id, filling=True)
            self.ask_fill(session, map_id, row.parent_run_id, row.queue)

    def finish(self, session: Session, row: WorkflowMap) -> None:
        """The fill found the source ended with every item done: release the Map step."""
        row.finished_at = self._clock.now()
        session.flush()
        self._children.release(session, row.parent_run_id, row.state, row.visit)

    def ask_fill(self, session: Session, map_id: int, run_id: str, queue: str) -> None:
        """Enqueue the Map's fill task, sent when ``session`` commits."""
        kwargs = {"map_id": map_id}
        self._recorder.enqueue(session, FILL_TASK, kwargs=kwargs, run_id=run_id, queue=queue)

    @staticmethod
    def _count(session: Session, map_id: int, failed: bool) -> Any:
        """Add the item to ``done`` (and ``failed``); the Map's counters after it."""
        table = WorkflowMap
        return session.execute(
            update(table)
            .where(table.id == map_id)
            .values(done=table.done + 1, failed=table.failed + (1 if failed else 0))
            .returning(
                table.parent_run_id,
                table.state,
                table.visit,
                table.concurrency,
                table.started,
                table.next_offset,
                table.done,
                table.exhausted,
                table.filling,
                table.queue,
            )
            .execution_options(synchronize_session=False)
        ).first()

    @staticmethod
    def _set(session: Session, map_id: int, **values: Any) -> None:
        session.execute(
            update(WorkflowMap)
            .where(WorkflowMap.id == map_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _low_water(concurrency: int) -> int:
    """Free slots that make a finishing item ask for the next page: a quarter of the
    bound, so a Map of many items fills in pages, not one item at a time."""
    return max(1, concurrency // 4)
