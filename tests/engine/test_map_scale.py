"""A Map of 100,000 items (SQLite, a fast item): items start in pages, no transaction
starts more than a page, memory stays flat, and the parent joins exactly once."""

from __future__ import annotations

import gc
import os
import random
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from engine import Engine, NullMetrics, Settings, VirtualClock
from engine.testing import WorkflowHarness
from tests.child_workflows import WIDE_PAGES, WORKFLOWS

ITEMS = int(os.environ.get("STATEWRIGHT_MAP_SCALE_ITEMS", "100000"))


class InsertCounter:
    """Counts rows inserted into ``workflow_children`` by each transaction."""

    def __init__(self) -> None:
        self.current = 0
        self.largest = 0

    def statement(self, _conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if sql.lstrip().upper().startswith("INSERT INTO WORKFLOW_CHILDREN"):
            self.current += len(params) if isinstance(params, list) else 1

    def ended(self, _conn: Any) -> None:
        self.largest = max(self.largest, self.current)
        self.current = 0


@pytest.fixture
def scale_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = Engine(
        Settings(database_url=sqlite_url, continue_for=0.0),
        WORKFLOWS,
        clock=VirtualClock(),
        metrics=NullMetrics(),
        rng=random.Random(7),
    )
    yield engine
    engine.close()


@pytest.mark.slow
def test_a_map_of_100000_items_is_paged_and_joined_once(scale_engine: Engine) -> None:
    """100,000 items: the source is never asked for more than a page, no transaction
    inserts more than a page of items, Python's memory does not grow with the items
    done, and the parent moves once, after the last one."""
    engine, counter = scale_engine, InsertCounter()
    event.listen(engine.db.engine, "before_cursor_execute", counter.statement)
    event.listen(engine.db.engine, "commit", counter.ended)
    harness = WorkflowHarness(engine)
    WIDE_PAGES.clear()
    run = engine.start("wide_map", {"items": ITEMS, "effects": False})
    tracemalloc.start()
    samples: dict[int, int] = {}
    steps = 0
    while harness.step() is not None:
        steps += 1
        if steps % 5000 == 0:
            harness.deliveries.clear()  # the harness's own log, not the engine's memory
            harness.queue.published.clear()
            gc.collect()
            samples[steps] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    info = engine.get(run.id)
    [done] = engine.maps(run.id)
    assert (info.state, done.started, done.done, done.failed) == ("done", ITEMS, ITEMS, 0)
    assert [h.trigger for h in engine.history(run.id)] == ["start", "prepared", "mapped"]
    assert max(limit for _, limit in WIDE_PAGES) <= 100
    assert sum(len(range(o, min(o + lim, ITEMS))) for o, lim in WIDE_PAGES) == ITEMS
    assert counter.largest <= 100
    readings = list(samples.values())
    assert readings[-1] - readings[1] < 8 * 1024 * 1024, samples
