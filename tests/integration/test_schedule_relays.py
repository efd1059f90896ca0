"""Two real `statewright relay` processes firing one schedule on PostgreSQL: every fire
time is started once or counted as skipped once, never both, never twice."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from statewright.models.engine import WorkflowRun
from statewright.models.schedules import WorkflowSchedule
from tests.integration.conftest import Cluster, ClusterFactory
from tests.sample_workflows import effect_counts

PREFIX = "schedule:tick.every-second:"


def log_lines(cluster: Cluster, event: str) -> list[tuple[int, dict[str, Any]]]:
    """(relay number, line) for each JSON log line of ``event`` the relays wrote."""
    found = []
    relays = [p for p in cluster.processes if p.name == "relay"]
    for number, relay in enumerate(relays):
        for line in relay.output().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == event:
                found.append((number, json.loads(line)))
    return found


def by_relay(fired: list[tuple[int, dict[str, Any]]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for number, _ in fired:
        counts[number] = counts.get(number, 0) + 1
    return counts


def racing(fired: list[tuple[int, dict[str, Any]]]) -> bool:
    """Both relays have started fire times, eight at least in all."""
    counts = by_relay(fired)
    return len(counts) == 2 and sum(counts.values()) >= 8


def tick_runs(cluster: Cluster) -> dict[str, WorkflowRun]:
    with cluster.engine.db.reads() as session:
        runs = session.execute(select(WorkflowRun).where(WorkflowRun.workflow == "tick"))
        return {run.idempotency_key or "": run for run in runs.scalars()}


@pytest.mark.long
def test_two_relay_processes_start_each_fire_time_once(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """A schedule firing every second, claimed by two relays until both have fired: one run
    per started fire time, each run's step applied once, and the fire times between the
    first and the last each started or skipped exactly once (by the database's clock)."""
    cluster = make_cluster(
        redis_url,
        STATEWRIGHT_WORKFLOWS="tests.sample_workflows,tests.scheduled_workflows",
        STATEWRIGHT_LOG_LEVEL="INFO",
    )
    cluster.worker()
    cluster.relay()
    cluster.relay()
    deadline = time.monotonic() + 120
    while not racing(log_lines(cluster, "schedule fired")) and time.monotonic() < deadline:
        time.sleep(0.5)
    for process in cluster.processes:
        if process.name == "relay":
            process.stop()
    fired = log_lines(cluster, "schedule fired")
    assert racing(fired), f"in two minutes, fire times started by relay: {by_relay(fired)}"
    assert log_lines(cluster, "fire time already started") == []
    assert log_lines(cluster, "schedule could not start its run") == []
    times = sorted(datetime.fromisoformat(line["fire_time"]) for _, line in fired)
    assert len(set(times)) == len(times)
    skipped = sum(line["skipped"] for _, line in log_lines(cluster, "missed fire times skipped"))
    assert len(times) + skipped == (times[-1] - times[0]) // timedelta(seconds=1) + 1
    runs = tick_runs(cluster)
    assert sorted(k for k in runs if k.startswith(PREFIX)) == sorted(
        PREFIX + moment.isoformat() for moment in times
    )
    engine = cluster.engine
    for run in runs.values():
        assert engine.wait(run.id, timeout=60).status == "succeeded"
        with engine.db.reads() as session:
            assert effect_counts(session, run.id) == {"ticking": 1}
    with engine.db.reads() as session:
        names = session.execute(select(WorkflowSchedule.name).order_by(WorkflowSchedule.name))
        assert list(names.scalars()) == ["tick.every-second", "tick.nightly"]
