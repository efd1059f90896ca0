"""A large Map (SQLite, a fast item): items start in pages, no transaction starts more
than a page, memory stays flat, and the parent joins exactly once.

By default 3,000 items (30 pages of 100 under a bound of 200, some 15 seconds), so the
suite stays quick while paging, refills and the one-page-per-transaction bound are all
exercised. The full-size run (about 17 minutes) is

    STATEWRIGHT_MAP_SCALE_ITEMS=100000 pytest tests/engine/test_map_scale.py
"""

from __future__ import annotations

import gc
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from statewright import Engine, NullMetrics, Settings, VirtualClock
from statewright.models import WorkflowChild
from statewright.testing import WorkflowHarness
from tests.child_workflows import WIDE_PAGES, WORKFLOWS

#: Items in the Map: ``STATEWRIGHT_MAP_SCALE_ITEMS`` (100000 for the full-size run).
ITEMS = int(os.environ.get("STATEWRIGHT_MAP_SCALE_ITEMS", "3000"))
#: ``wide_map``'s page size: no page and no transaction may start more items.
PAGE = 100


def resident_bytes() -> int:
    """This process's resident memory (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class InsertCounter:
    """Counts the item rows each transaction adds (ORM flushes, however batched)."""

    def __init__(self) -> None:
        self.current: dict[int, int] = {}
        self.largest = 0

    def flushing(self, session: Session, _context: Any, _instances: Any) -> None:
        added = sum(isinstance(row, WorkflowChild) for row in session.new)
        self.current[id(session)] = self.current.get(id(session), 0) + added

    def committed(self, session: Session) -> None:
        self.largest = max(self.largest, self.current.pop(id(session), 0))

    def rolled_back(self, session: Session) -> None:
        self.current.pop(id(session), None)


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


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_a_large_map_is_paged_and_joined_once(scale_engine: Engine) -> None:
    """ITEMS items: the source is never asked for more than a page, no transaction
    inserts more than a page of items, the process's memory does not grow with the items
    done, and the parent moves once, after the last one."""
    assert ITEMS >= 10 * PAGE, f"STATEWRIGHT_MAP_SCALE_ITEMS={ITEMS}: use at least {10 * PAGE}"
    engine, counter = scale_engine, InsertCounter()
    event.listen(Session, "before_flush", counter.flushing)
    event.listen(Session, "after_commit", counter.committed)
    event.listen(Session, "after_rollback", counter.rolled_back)
    harness = WorkflowHarness(engine)
    WIDE_PAGES.clear()
    run = engine.start("wide_map", {"items": ITEMS, "effects": False})
    samples: dict[int, int] = {}
    steps = 0
    while harness.step() is not None:
        steps += 1
        if steps % max(1, ITEMS // 10) == 0:
            harness.deliveries.clear()  # the harness's own log, not the engine's memory
            harness.queue.published.clear()
            gc.collect()
            samples[steps] = resident_bytes()
    event.remove(Session, "before_flush", counter.flushing)
    event.remove(Session, "after_commit", counter.committed)
    event.remove(Session, "after_rollback", counter.rolled_back)
    info = engine.get(run.id)
    [done] = engine.maps(run.id)
    assert (info.state, done.started, done.done, done.failed) == ("done", ITEMS, ITEMS, 0)
    assert [h.trigger for h in engine.history(run.id)] == ["start", "prepared", "mapped"]
    assert max(limit for _, limit in WIDE_PAGES) <= PAGE
    assert len(WIDE_PAGES) >= ITEMS // PAGE
    assert sum(len(range(o, min(o + lim, ITEMS))) for o, lim in WIDE_PAGES) == ITEMS
    assert 0 < counter.largest <= PAGE
    readings = list(samples.values())
    assert len(readings) >= 5
    assert readings[-1] - readings[1] < 32 * 1024 * 1024, samples
