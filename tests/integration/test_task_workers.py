"""Plain tasks and silos under real `celery worker` processes, PostgreSQL and a real broker:
a task whose message or worker is lost runs again, once, and each silo's worker takes
only the messages of its silo."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from kombu import Connection
from sqlalchemy import select

from statewright import Engine, Settings
from statewright.models import OutboxMessage
from tests.conftest import TEST_QUEUE
from tests.integration.conftest import Cluster, ClusterFactory, purge
from tests.integration.processes import BIN, Process
from tests.sample_workflows import effect_counts
from tests.task_workflows import Notices, Silos

TASKS = {
    "STATEWRIGHT_WORKFLOWS": "tests.sample_workflows,tests.task_workflows",
    "STATEWRIGHT_DISPATCH_TIMEOUT": "3",
}


def tasks_engine(cluster: Cluster) -> Engine:
    """An engine of the test process that knows the task workflows, publishing to the broker."""
    env = {**cluster.env, "STATEWRIGHT_SILO_MODE": "monolith"}
    engine = Engine(Settings.from_env(env), [Notices(), Silos()])
    cluster.owned.append(engine)
    return engine


def wait_for_effects(
    engine: Engine, run_id: str, wanted: set[str], timeout: float = 60.0
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        with engine.db.reads() as session:
            found = effect_counts(session, run_id)
        if wanted <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def enqueue(engine: Engine, task: str, run_id: str, **kwargs: object) -> None:
    with engine.db.transaction() as session:
        engine.enqueue(session, task, {"run_id": run_id, **kwargs}, run_id=run_id)


def statewright_worker(cluster: Cluster, *args: str) -> Process:
    process = cluster.spawn("worker", [str(BIN / "statewright"), "worker", "-c", "1", *args])
    process.wait_for("ready.")
    return process


@pytest.fixture
def silo_queues_removed(broker_url: str) -> Iterator[None]:
    yield
    with Connection(broker_url) as connection:
        for silo in ("control", "region"):
            with contextlib.suppress(Exception):
                connection.default_channel.queue_delete(f"{TEST_QUEUE}.{silo}")


def test_task_message_lost_in_the_broker_is_sent_again(
    make_cluster: ClusterFactory, broker_url: str
) -> None:
    """A plain task whose message the broker lost (purged before any worker took it) is
    sent again by the relay after the dispatch timeout and runs once."""
    cluster = make_cluster(broker_url, **TASKS)
    engine = tasks_engine(cluster)
    enqueue(engine, "notices.notify", "lost", n=0)
    time.sleep(0.5)
    purge(broker_url)  # the broker loses the message
    cluster.worker()
    cluster.relay()
    found = wait_for_effects(engine, "lost", {"notice-0"})
    assert found == {"notice-0": 1, "notice-0-attempt-1": 1}
    assert engine.wait_for_tasks("lost", timeout=20) == []


@pytest.mark.long
def test_task_whose_worker_dies_after_acking_runs_again(
    make_cluster: ClusterFactory, broker_url: str
) -> None:
    """A task acknowledged when taken, whose worker is SIGKILLed while running it, runs
    again when its lease ends, as attempt 2, and its effect lands once."""
    cluster = make_cluster(broker_url, **TASKS)
    engine = tasks_engine(cluster)
    doomed = cluster.worker(concurrency=1)
    cluster.relay()
    enqueue(engine, "notices.notify_early", "killed", n=0, sleep=3.5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.db.reads() as session:
            if session.execute(select(OutboxMessage.claimed)).scalar():
                break
        time.sleep(0.05)
    doomed.kill()
    cluster.worker(concurrency=1)
    found = wait_for_effects(engine, "killed", {"notice-0"})
    assert found == {"notice-0": 1, "notice-0-attempt-2": 1}
    assert engine.wait_for_tasks("killed", timeout=20) == []


@pytest.mark.usefixtures("silo_queues_removed")
def test_each_silo_worker_takes_only_its_silo_messages(
    make_cluster: ClusterFactory, broker_url: str
) -> None:
    """`statewright worker` in the region silo takes region messages and leaves control
    messages queued (no refusal, nothing acked) until a control worker takes them."""
    region = make_cluster(broker_url, STATEWRIGHT_SILO_MODE="region", **TASKS)
    statewright_worker(region)
    engine = tasks_engine(region)
    enqueue(engine, "silos.control_only", "silos")
    enqueue(engine, "silos.region_only", "silos")
    assert wait_for_effects(engine, "silos", {"region"}) == {"region": 1}
    time.sleep(2)
    assert effect_counts_now(engine, "silos") == {"region": 1}
    assert "SiloLimitError" not in region.worker_logs()
    control = make_cluster(broker_url, STATEWRIGHT_SILO_MODE="control", **TASKS)
    statewright_worker(control)
    assert wait_for_effects(engine, "silos", {"control"}) == {"region": 1, "control": 1}


@pytest.mark.usefixtures("silo_queues_removed")
def test_worker_queues_option_names_the_queues(
    make_cluster: ClusterFactory, broker_url: str
) -> None:
    """`statewright worker --queues Q` consumes Q only, whatever its silo would take."""
    cluster = make_cluster(broker_url, **TASKS)
    statewright_worker(cluster, "--queues", f"{TEST_QUEUE}.control")
    engine = tasks_engine(cluster)
    enqueue(engine, "silos.region_only", "chosen")
    enqueue(engine, "silos.control_only", "chosen")
    assert wait_for_effects(engine, "chosen", {"control"}) == {"control": 1}
    time.sleep(2)
    assert effect_counts_now(engine, "chosen") == {"control": 1}


def effect_counts_now(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.reads() as session:
        return effect_counts(session, run_id)
