"""Map at run time: fan out over items page by page, join where the last one commits.

Entering a Map state writes its ``workflow_maps`` row and a durable fill task, and the
run waits there with no message. The fill task locks the Map's row, asks the item
source for the next page (no more items than there is room for under
``concurrency``), and starts them: child runs, or durable ``statewright.map_item``
tasks. Each item's completing transaction (the child's final move, or the item
task's own) runs ``UPDATE workflow_maps SET done = done + 1 ... RETURNING``: the item
that makes ``done == started`` with the source exhausted dispatches the parent's Map
step in that same transaction; an item that leaves room for a page asks for the next
fill. No process polls, and nothing counts outside the database. The Map step then
takes ``on_done``, or ``on_failed`` (or fails the run) past the tolerance. Redriving a
run that failed there runs its failed items again, and only those (``redrive``).

The parts: ``contexts`` (what the workflow's methods receive), ``fill`` (entering a
Map and starting its items), ``items`` (running task items), ``join`` (counting each
item's end), ``reading`` (counters, failed items, the Map step), ``redrive`` (failed
items run again) and ``tasks`` (the durable tasks that drive them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from statewright.children import Children
from statewright.clock import Clock
from statewright.fanout.contexts import ItemContext, PageContext
from statewright.fanout.fill import FILL_ATTEMPTS, MapFill
from statewright.fanout.items import TaskItems
from statewright.fanout.join import MapJoin
from statewright.fanout.reading import (
    QUOTED_FAILURES,
    FailedItem,
    MapInfo,
    failed_items,
    map_outcome,
    maps_of,
)
from statewright.fanout.redrive import MapRedrive
from statewright.fanout.tasks import FILL_TASK, ITEM_TASK, item_task, register_child_tasks
from statewright.metrics import Metrics
from statewright.models.engine import WorkflowRun
from statewright.persistence import Database
from statewright.recorder import RunRecorder
from statewright.registry import Registry, StepOptions

if TYPE_CHECKING:
    from statewright.operations import Operations


class Fanout:
    """Fills Maps, runs their task items, and counts each item's end in its commit."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        operations: Operations,
        children: Children,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._join = MapJoin(recorder, children, clock, metrics)
        self._redrive = MapRedrive(registry, recorder, operations, clock, metrics)
        self._fill = MapFill(
            db, registry, recorder, operations, self._join, self._redrive, clock, metrics
        )
        self._items = TaskItems(db, registry, recorder, self._join, clock, metrics)

    def holds(self, session: Session, run: WorkflowRun, step: StepOptions) -> bool:
        """Whether ``run``, entering or resuming in Map state ``step``, waits there (see
        ``MapFill.holds``)."""
        return self._fill.holds(session, run, step)

    def redriven(self, session: Session, run: WorkflowRun) -> int:
        """The locked ``run`` is being redriven: queue its Map's failed items to run again
        (see ``MapRedrive.requeue``); returns how many."""
        return self._redrive.requeue(session, run)

    def fill(self, map_id: int, retry: Callable[[float], BaseException] | None = None) -> int:
        """Start the Map's next items up to its concurrency (see ``MapFill.fill``)."""
        return self._fill.fill(map_id, retry)

    def item_finished(self, session: Session, map_id: int, *, failed: bool) -> None:
        """Count one finished item in its completing transaction (``MapJoin``)."""
        self._join.item_finished(session, map_id, failed=failed)

    def run_item(self, item_id: int, retry: Callable[[float], BaseException]) -> None:
        """One delivery of a task item (see ``TaskItems.run_item``)."""
        self._items.run_item(item_id, retry)


__all__ = [
    "FILL_ATTEMPTS",
    "FILL_TASK",
    "ITEM_TASK",
    "QUOTED_FAILURES",
    "FailedItem",
    "Fanout",
    "ItemContext",
    "MapInfo",
    "PageContext",
    "failed_items",
    "item_task",
    "map_outcome",
    "maps_of",
    "register_child_tasks",
]
