"""Chaos for Map: 10,000 task items fanned out while real workers are SIGKILLed; every
item's effect happens once and the parent joins exactly once.

Set ``STATEWRIGHT_CHAOS_MAP_ITEMS`` for another size. The test prints its figures.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest
from sqlalchemy import func, select

from tests.conftest import REDIS_URL, service_up
from tests.integration.conftest import ClusterFactory, purge
from tests.integration.processes import Process
from tests.sample_workflows import effects

ITEMS = int(os.environ.get("STATEWRIGHT_CHAOS_MAP_ITEMS", "10000"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_map_joins_once_while_workers_are_killed(make_cluster: ClusterFactory, pg_url: str) -> None:
    """A Map of 10,000 items on three workers, one SIGKILLed every few seconds during the
    fan-out: the run moves out of its Map state once, every item is counted once, and
    each item's effect happened once."""
    if not service_up("127.0.0.1", 6379):
        pytest.fail("Redis must be up for the chaos suite")
    purge(REDIS_URL)
    chaos_random = random.Random(int(os.environ.get("STATEWRIGHT_CHAOS_SEED", "20261202")))
    cluster = make_cluster(
        REDIS_URL,
        STATEWRIGHT_WORKFLOWS="tests.chaos.map_workflow",
        STATEWRIGHT_LEASE_GRACE="2",
        STATEWRIGHT_DEFAULT_TIME_LIMIT="10",  # a killed item's lease ends in 12 s, not 302
        STATEWRIGHT_DISPATCH_TIMEOUT="6",
    )
    from statewright import Engine, Settings
    from tests.chaos.map_workflow import WORKFLOWS

    cluster.engine.close()
    cluster.engine = engine = Engine(Settings.from_env(cluster.env), WORKFLOWS)
    workers: list[Process] = [cluster.worker(concurrency=2) for _ in range(3)]
    cluster.relay()
    started = time.monotonic()
    run_id = engine.start("chaos_map", {"items": ITEMS}).id
    kills = 0
    next_kill = time.monotonic() + chaos_random.uniform(2, 5)
    deadline = time.monotonic() + 1500
    while time.monotonic() < deadline and not engine.get(run_id).finished:
        maps = engine.maps(run_id)
        fanning_out = not maps or not maps[0].complete
        if fanning_out and time.monotonic() >= next_kill:
            workers.pop(chaos_random.randrange(len(workers))).kill()
            kills += 1
            workers.append(cluster.worker(concurrency=2))
            next_kill = time.monotonic() + chaos_random.uniform(2, 5)
        time.sleep(0.2)
    seconds = time.monotonic() - started
    info = engine.get(run_id)
    assert (info.status, info.state) == ("succeeded", "done"), info
    moves = [h.trigger for h in engine.history(run_id) if h.trigger not in ("retry", "redispatch")]
    assert moves == ["start", "prepared", "mapped"]
    [mapped] = engine.maps(run_id)
    assert (mapped.started, mapped.done, mapped.failed) == (ITEMS, ITEMS, 0)
    with engine.db.reads() as session:
        counted = session.execute(
            select(func.count(), func.sum(effects.c.count), func.max(effects.c.count)).where(
                effects.c.run_id == run_id
            )
        ).one()
    assert tuple(counted) == (ITEMS, ITEMS, 1)
    joins = [line for line in cluster.worker_log_lines("join released") if line["run"] == run_id]
    assert len(joins) == 1
    assert kills >= 1
    figures = {"items": ITEMS, "worker kills (SIGKILL)": kills, "seconds": round(seconds, 1)}
    figures["items/s"] = round(ITEMS / seconds, 1)
    print("\nmap chaos figures:\n" + json.dumps(figures, indent=2))
