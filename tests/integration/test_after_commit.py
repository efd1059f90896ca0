"""After-commit dispatch against a real worker: never before the commit, never after a rollback."""

from __future__ import annotations

import time

from sqlalchemy import select

from tests.integration.conftest import ClusterFactory
from tests.sample_workflows import effects


def probe_result(cluster: object, marker: str) -> int | None:
    engine = cluster.engine  # type: ignore[attr-defined]
    with engine.db.reads() as session:
        value = session.execute(
            select(effects.c.count).where(effects.c.run_id == marker, effects.c.state == "probe")
        ).scalar()
    return None if value is None else int(value)


def test_task_runs_only_after_its_transaction_commits(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """A task enqueued in an open transaction runs after the commit and sees what it wrote."""
    cluster = make_cluster(redis_url)
    cluster.worker()
    engine = cluster.engine
    with engine.db.transaction() as session:
        session.execute(effects.insert().values(run_id="m1", state="sender", count=1))
        engine.recorder.enqueue(session, "probe.look", kwargs={"marker": "m1"})
        time.sleep(2)  # a worker that got the message now would not see the row
        assert probe_result(cluster, "m1") is None
    deadline = time.monotonic() + 30
    while probe_result(cluster, "m1") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert probe_result(cluster, "m1") == 1


def test_task_from_a_rolled_back_transaction_never_runs(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """A task enqueued in a transaction that rolls back is never run, not even by the relay."""
    cluster = make_cluster(redis_url)
    cluster.worker()
    cluster.relay()
    engine = cluster.engine
    session = engine.db.sessions()
    session.begin()
    session.execute(effects.insert().values(run_id="m2", state="sender", count=1))
    engine.recorder.enqueue(session, "probe.look", kwargs={"marker": "m2"})
    session.rollback()
    session.close()
    with engine.db.transaction() as check:  # a control task proves the worker is alive
        engine.recorder.enqueue(check, "probe.look", kwargs={"marker": "control"})
    deadline = time.monotonic() + 30
    while probe_result(cluster, "control") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert probe_result(cluster, "control") == 0
    time.sleep(3)  # several relay rounds
    assert probe_result(cluster, "m2") is None
