"""One clock for leases and due times, the database's: a worker, relay or reaper whose own
clock is ten minutes off neither fails a healthy run, nor fires a timer early, nor holds
a due one back. Engines here run on real (skewed) clocks; each test runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sentry_sdk
from sqlalchemy import update

from statewright import Engine, InMemoryMetrics, Settings
from statewright.clock import DatabaseClock
from statewright.models import OutboxMessage, WorkflowRun
from statewright.testing import LocalQueue
from tests.engine.edge_workflows import EDGE_WORKFLOWS

SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class SkewedClock:
    """The system clock, off by ``offset``: a machine whose time is wrong."""

    offset: timedelta

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(autouse=True)
def own_sentry_scope() -> Iterator[None]:
    """Steps run here outside a task: their Sentry tags stay in this test."""
    with sentry_sdk.isolation_scope():
        yield


@pytest.fixture
def engines(database_url: str) -> Iterator[dict[str, Engine]]:
    """Three processes' engines on one database: a worker with a right clock, one ten
    minutes ahead and one ten minutes behind; each publishes into a local queue."""
    built = {
        name: Engine(
            Settings(database_url=database_url, continue_for=0.0),
            EDGE_WORKFLOWS,
            clock=SkewedClock(offset),
            metrics=InMemoryMetrics(),
        )
        for name, offset in (("right", timedelta(0)), ("ahead", SKEW), ("behind", -SKEW))
    }
    for engine in built.values():
        engine.publisher = LocalQueue()
    yield built
    for engine in built.values():
        engine.close()


def queued(engine: Engine) -> LocalQueue:
    assert isinstance(engine.publisher, LocalQueue)
    return engine.publisher


def lease_of(engine: Engine, run_id: str) -> datetime:
    with engine.db.sessions() as session:
        lease = session.get_one(WorkflowRun, run_id).lease_expires_at
    assert lease is not None
    return lease


def test_a_skewed_reaper_neither_fails_a_healthy_step_nor_misses_a_lost_one(
    engines: dict[str, Engine],
) -> None:
    """A step claimed by a worker ten minutes behind is leased by the database's clock; a
    reaper ten minutes ahead leaves it alone, and its completion lands. A lease that did
    expire is taken by a reaper ten minutes behind."""
    behind, ahead = engines["behind"], engines["ahead"]
    run = behind.start("review", {})
    step = behind.registry.step("review", "collecting")
    claim = behind.executor.claim_step(step, run.id, run.token)
    assert claim is not None
    assert ahead.reaper.run_once() == 0
    lease_seconds = step.time_limit + 5 + behind.settings.lease_grace
    assert abs(lease_of(behind, run.id) - behind.db.now()) < timedelta(seconds=lease_seconds + 5)
    behind.executor.execute(step, claim)
    assert behind.get(run.id).state == "reviewing"
    assert [h.trigger for h in behind.history(run.id)] == ["start", "collected"]

    lost = behind.start("review", {})
    assert behind.executor.claim_step(step, lost.id, lost.token) is not None
    with behind.db.transaction() as session:
        expired = behind.db.now() - timedelta(seconds=1)
        session.execute(
            update(WorkflowRun).where(WorkflowRun.id == lost.id).values(lease_expires_at=expired)
        )
    assert behind.reaper.run_once() == 1
    assert [h.trigger for h in behind.history(lost.id)] == ["start", "redispatch"]


def test_a_skewed_relay_sends_a_timer_when_the_database_says_it_is_due(
    engines: dict[str, Engine],
) -> None:
    """A poll's timer written by a worker ten minutes behind is due a minute later by the
    database's clock: a relay ten minutes ahead does not send it early, and once it is
    due a relay ten minutes behind sends it."""
    worker, ahead, behind = engines["behind"], engines["ahead"], engines["behind"]
    run = worker.start("gathering", {"notes": 10})
    first = queued(worker).messages.popleft()
    worker.executor.run_step(
        worker.registry.step("gathering", "gathering"), run.id, first.kwargs["token"]
    )
    assert [h.trigger for h in worker.history(run.id)] == ["start", "poll"]
    assert ahead.relay.run_once() == 0
    assert behind.relay.run_once() == 0
    with worker.db.transaction() as session:
        due = worker.db.now() - timedelta(seconds=1)
        session.execute(update(OutboxMessage).values(not_before=due))
    assert behind.relay.run_once() == 1
    assert [m.task_name for m in queued(behind).messages] == ["gathering.gathering"]


def test_the_database_clock_cancels_a_process_clock_skew(database_url: str) -> None:
    """A process clock ten minutes ahead, read through ``DatabaseClock``, tells the
    database's time within a second, and keeps telling it as the offset is measured
    again."""
    engine = Engine(Settings(database_url=database_url), EDGE_WORKFLOWS)
    try:
        clock = DatabaseClock(SkewedClock(SKEW), engine.db.now, every=0.0)
        for _ in range(3):
            assert abs(clock.now() - engine.db.now()) < timedelta(seconds=1)
        assert abs(clock.offset + SKEW) < timedelta(seconds=1)
    finally:
        engine.close()
