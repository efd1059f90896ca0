"""Chaos: real workers SIGKILLed, the broker restarted, database connections terminated.

Each run also dispatches a plain task through the outbox, and a second relay runs with
its clock 20 s ahead (libfaketime), so plain tasks must survive the same chaos and a
skewed relay must not fail a healthy run. Quick mode (CI): 200 runs. Full mode:
``STATEWRIGHT_CHAOS=full`` (1,000 runs), or set ``STATEWRIGHT_CHAOS_RUNS``. The test
prints its figures; RELIABILITY.md keeps the latest full run's.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.chaos.workflow import EXPECTED, STATES, TASK_EFFECT
from tests.conftest import AMQP_URL, REDIS_URL, service_up
from tests.integration.conftest import Cluster, ClusterFactory, Process, purge
from tests.sample_workflows import effect_counts

MODE = os.environ.get("STATEWRIGHT_CHAOS", "quick")
RUNS = int(os.environ.get("STATEWRIGHT_CHAOS_RUNS", "1000" if MODE == "full" else "200"))
APP_NAME = "statewright-chaos"
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


@dataclass
class Figures:
    runs: int = 0
    kills: int = 0
    broker_restarts: int = 0
    terminated_connections: int = 0
    stale_dropped: int = 0
    redispatches: int = 0
    tasks_sent_again: int = 0
    longest_recovery: float = 0.0
    seconds: float = 0.0
    #: run id -> (history length when its worker was killed, time of the kill)
    pending: dict[str, tuple[int, float]] = field(default_factory=dict)

    def report(self) -> dict[str, object]:
        return {
            "mode": MODE,
            "runs": self.runs,
            "worker kills (SIGKILL)": self.kills,
            "broker restarts": self.broker_restarts,
            "terminated database connections": self.terminated_connections,
            "stale or duplicate messages dropped": self.stale_dropped,
            "re-dispatches by the reaper": self.redispatches,
            "plain tasks run, each exactly once": self.runs,
            "plain task messages sent again": self.tasks_sent_again,
            "relays (one 20 s ahead)": 2,
            "longest kill-to-moving-again (s)": round(self.longest_recovery, 2),
            "wall time (s)": round(self.seconds, 1),
        }


def restart_redis() -> None:
    subprocess.run(
        ["redis-cli", "-p", "6379", "shutdown", "nosave"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    deadline = time.monotonic() + 10
    while service_up("127.0.0.1", 6379) and time.monotonic() < deadline:
        time.sleep(0.1)
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(REDIS_START, capture_output=True, timeout=10, check=True)
    deadline = time.monotonic() + 20
    while not service_up("127.0.0.1", 6379) and time.monotonic() < deadline:
        time.sleep(0.1)


def restart_rabbitmq() -> None:
    for action in ("stop_app", "start_app"):
        subprocess.run(
            ["rabbitmqctl", action],
            capture_output=True,
            timeout=120,
            check=True,
        )
    deadline = time.monotonic() + 60
    while not service_up("127.0.0.1", 5672) and time.monotonic() < deadline:
        time.sleep(0.2)


BROKERS = {
    "redis": (REDIS_URL, 6379, restart_redis),
    "rabbitmq": (AMQP_URL, 5672, restart_rabbitmq),
}


def terminate_worker_connections(admin_url: str) -> int:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        killed = connection.execute(
            text(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()) AS t"
            ),
            {"name": APP_NAME},
        ).scalar_one()
    engine.dispose()
    return int(killed)


def claimed_runs(cluster: Cluster) -> dict[str, int]:
    with cluster.engine.db.reads() as session:
        rows = session.execute(
            text("SELECT id, history_len FROM workflow_runs WHERE claimed AND status = 'running'")
        ).all()
    return {run_id: seq for run_id, seq in rows}


def moved_since(cluster: Cluster, marks: dict[str, int]) -> set[str]:
    if not marks:
        return set()
    with cluster.engine.db.reads() as session:
        rows = session.execute(
            text("SELECT id, history_len FROM workflow_runs WHERE id = ANY(:ids)"),
            {"ids": list(marks)},
        ).all()
    return {run_id for run_id, seq in rows if seq > marks[run_id]}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_chaos(make_cluster: ClusterFactory, pg_url: str, broker: str) -> None:
    """Every run completes with exactly its expected transitions and each effect exactly once,
    while workers are killed, the broker restarts and connections are terminated."""
    broker_url, port, restart_broker = BROKERS[broker]
    if not service_up("127.0.0.1", port):
        pytest.fail(f"{broker} must be up for the chaos suite")
    purge(broker_url)
    chaos_random = random.Random(int(os.environ.get("STATEWRIGHT_CHAOS_SEED", "20261124")))
    separator = "&" if "?" in pg_url else "?"
    cluster = make_cluster(
        broker_url,
        STATEWRIGHT_DATABASE_URL=f"{pg_url}{separator}application_name={APP_NAME}",
        STATEWRIGHT_WORKFLOWS="tests.chaos.workflow",
        STATEWRIGHT_LEASE_GRACE="2",
        STATEWRIGHT_DISPATCH_TIMEOUT="6",
        STATEWRIGHT_LOG_FORMAT="json",
    )
    from statewright import Engine, Settings
    from tests.chaos.workflow import WORKFLOWS

    cluster.engine.close()
    cluster.engine = Engine(
        Settings.from_env({**cluster.env, "STATEWRIGHT_DATABASE_URL": pg_url}), WORKFLOWS
    )
    workers: list[Process] = [cluster.worker(concurrency=2) for _ in range(3)]
    cluster.relay()
    # a relay whose clock runs 20 s ahead: leases and due times are judged by the
    # database's clock, so it must neither fail a healthy run nor send a timer early
    cluster.relay(ahead=20)
    figures = Figures(runs=RUNS)
    started = time.monotonic()
    runs = [cluster.engine.start("chain").id for _ in range(RUNS)]
    restarted = False
    next_kill = time.monotonic() + chaos_random.uniform(2, 5)
    next_terminate = time.monotonic() + chaos_random.uniform(1, 3)
    deadline = time.monotonic() + (1500 if MODE == "full" else 600)
    while time.monotonic() < deadline:
        with cluster.engine.db.reads() as session:
            # a run is done when it finished and the plain task it dispatched has run
            unfinished = session.execute(
                text(
                    "SELECT (SELECT count(*) FROM workflow_runs "
                    "WHERE status NOT IN ('succeeded', 'failed', 'cancelled')) "
                    "+ (SELECT count(*) FROM workflow_outbox WHERE token IS NULL)"
                )
            ).scalar_one()
        now = time.monotonic()
        for run_id in moved_since(cluster, {r: seq for r, (seq, _) in figures.pending.items()}):
            _, killed_at = figures.pending.pop(run_id)
            figures.longest_recovery = max(figures.longest_recovery, now - killed_at)
        if unfinished == 0:
            break
        if now >= next_kill:
            victim = workers.pop(chaos_random.randrange(len(workers)))
            marks = claimed_runs(cluster)
            victim.kill()
            figures.kills += 1
            for run_id, seq in marks.items():
                figures.pending.setdefault(run_id, (seq, now))
            workers.append(cluster.worker(concurrency=2))
            next_kill = time.monotonic() + chaos_random.uniform(2, 6)
        if not restarted and now - started > 8:
            restart_broker()
            figures.broker_restarts += 1
            restarted = True
        if now >= next_terminate:
            figures.terminated_connections += terminate_worker_connections(
                pg_url.rsplit("/", 1)[0] + "/test"
            )
            next_terminate = time.monotonic() + chaos_random.uniform(2, 5)
        time.sleep(0.2)
    figures.seconds = time.monotonic() - started
    logs = cluster.worker_logs()
    figures.stale_dropped = logs.count('"message dropped"')
    figures.tasks_sent_again = cluster.relay_logs().count('"task sent again"')
    with cluster.engine.db.reads() as session:
        statuses = {run_id: cluster.engine.get(run_id).status for run_id in runs}
        assert set(statuses.values()) == {"succeeded"}, {
            s: sum(1 for v in statuses.values() if v == s) for s in set(statuses.values())
        }
        for run_id in runs:
            history = cluster.engine.history(run_id)
            figures.redispatches += sum(1 for h in history if h.trigger == "redispatch")
            declared = [
                (h.from_state, h.trigger, h.to_state)
                for h in history
                if h.trigger not in ("retry", "redispatch", "poll")
            ]
            assert declared == EXPECTED, (run_id, declared)
            expected_effects = dict.fromkeys([*STATES, TASK_EFFECT], 1)
            assert effect_counts(session, run_id) == expected_effects, run_id
    report = {"broker": broker, **figures.report()}
    print("\nchaos figures:\n" + json.dumps(report, indent=2))
    Path(os.environ.get("STATEWRIGHT_CHAOS_REPORT", "/dev/null")).write_text(json.dumps(report))
    assert figures.kills >= 1
    assert figures.broker_restarts == 1
