"""A Map of 2,000 task items on real `celery worker` processes, PostgreSQL and Redis:
every item's effect once, spread over the workers, and the parent joined exactly once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from statewright import Engine, Settings
from statewright.models import WorkflowChild
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
