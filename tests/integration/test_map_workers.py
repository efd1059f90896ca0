"""Maps on real `celery worker` processes, PostgreSQL and Redis: 2,000 task items with
every item's effect once, spread over the workers, and the parent joined exactly once;
a Map's time limit interrupting an item and bounding a killed worker's item's lease."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from statewright import Engine, Settings
from statewright.models import OutboxMessage, WorkflowChild
from tests.child_workflows import WORKFLOWS
from tests.integration.conftest import ClusterFactory
from tests.sample_workflows import effects

CHILDREN = {
    "STATEWRIGHT_WORKFLOWS": "tests.sample_workflows,tests.child_workflows",
    "STATEWRIGHT_DISPATCH_TIMEOUT": "10",
}


@pytest.mark.long
def test_a_map_of_2000_items_joins_once_on_real_workers(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """2,000 items on two worker processes: each effect once, each item's result written
    by a worker, no more than the bound in flight, and one move out of the Map state."""
    cluster = make_cluster(redis_url, **CHILDREN)
    engine = Engine(Settings.from_env(cluster.env), WORKFLOWS)
    cluster.owned.append(engine)
    cluster.worker(concurrency=2)
    cluster.worker(concurrency=2)
    cluster.relay()
    run = engine.start("wide_map", {"items": 2000})
    done = engine.wait(run.id, timeout=600, interval=0.5)
    assert (done.status, done.state) == ("succeeded", "done")
    assert [h.trigger for h in engine.history(run.id)] == ["start", "prepared", "mapped"]
    [mapped] = engine.maps(run.id)
    assert (mapped.started, mapped.done, mapped.failed) == (2000, 2000, 0)
    with engine.db.reads() as session:
        counts = session.execute(
            select(func.count(), func.sum(effects.c.count)).where(effects.c.run_id == run.id)
        ).one()
        results = session.execute(
            select(WorkflowChild.result).where(WorkflowChild.parent_run_id == run.id)
        ).scalars()
        pids = {result["pid"] for result in results}
    assert tuple(counts) == (2000, 2000)
    assert len(pids) >= 2
    joins = cluster.worker_log_lines("join released")
    assert [line["run"] for line in joins] == [run.id]


TIMED_TASK = "statewright.map_item.timed_map.mapping"


def timed_result(engine: Engine, run_id: str) -> tuple[dict[str, int], Any]:
    """The run's effects and its one item's result."""
    with engine.db.reads() as session:
        found = {
            state: count
            for state, count in session.execute(
                select(effects.c.state, effects.c.count).where(effects.c.run_id == run_id)
            )
        }
        result = session.execute(
            select(WorkflowChild.result).where(WorkflowChild.parent_run_id == run_id)
        ).scalar_one()
    return found, result


def test_an_item_whose_worker_is_killed_runs_again_after_the_maps_time_limit(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """An item of a Map with a 2 s time limit whose worker is SIGKILLed mid-item is sent
    again when its lease ends (2 s, the hard-limit margin and the 1 s grace), not after the
    engine's default 300 s: it runs as attempt 2 on another worker and lands once."""
    cluster = make_cluster(redis_url, **CHILDREN)
    engine = Engine(Settings.from_env(cluster.env), WORKFLOWS)
    cluster.owned.append(engine)
    doomed = cluster.worker(concurrency=1)
    cluster.relay()
    run = engine.start("timed_map", {"items": 1, "slow": [0], "sleep": 1.5})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.db.reads() as session:
            claimed = session.execute(
                select(OutboxMessage.claimed).where(OutboxMessage.task_name == TIMED_TASK)
            ).scalar()
        if claimed:
            break
        time.sleep(0.02)
    doomed.kill()
    killed_at = time.monotonic()
    cluster.worker(concurrency=1)
    done = engine.wait(run.id, timeout=120, interval=0.2)
    assert (done.status, done.state) == ("succeeded", "done")
    assert time.monotonic() - killed_at < 60
    found, result = timed_result(engine, run.id)
    assert found == {"item-0": 1}
    assert result["attempt"] == 2


def test_an_item_past_the_maps_time_limit_is_stopped_and_tried_again(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """An item still running when the Map's 2 s time limit passes is interrupted by the
    soft limit (a failed attempt, its writes rolled back) and runs again as attempt 2."""
    cluster = make_cluster(redis_url, **CHILDREN)
    engine = Engine(Settings.from_env(cluster.env), WORKFLOWS)
    cluster.owned.append(engine)
    cluster.worker(concurrency=1)
    cluster.relay()
    started = time.monotonic()
    run = engine.start("timed_map", {"items": 1, "slow": [0], "sleep": 30})
    done = engine.wait(run.id, timeout=120, interval=0.2)
    assert (done.status, done.state) == ("succeeded", "done")
    assert time.monotonic() - started < 30
    found, result = timed_result(engine, run.id)
    assert found == {"item-0": 1}
    assert result["attempt"] == 2
