"""Real processes: `celery worker` and `statewright relay` against PostgreSQL and a broker."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from statewright import Engine, Settings
from tests.conftest import AMQP_URL, REDIS_URL, TEST_QUEUE, require_service, service_up
from tests.integration.processes import BIN, ROOT, Process, ProcessGroup
from tests.sample_workflows import WORKFLOWS


@dataclass
class Cluster(ProcessGroup):
    """Workers and a relay sharing one database and broker with the test's engine."""

    engine: Engine = field(kw_only=True)
    #: Other engines a test built against this cluster, closed with it.
    owned: list[Engine] = field(default_factory=list, kw_only=True)

    def worker(self, concurrency: int = 2) -> Process:
        return self.celery_worker("statewright.worker_app", ready="ready.", concurrency=concurrency)

    def relay(self, *, ahead: int = 0) -> Process:
        """A ``statewright relay``; with ``ahead``, its clock runs that many seconds ahead
        of the machine's (libfaketime), as on a machine whose clock is off."""
        skew = ["faketime", "-f", f"+{ahead}s"] if ahead else []
        return self.spawn("relay", [*skew, str(BIN / "statewright"), "relay"])

    def relay_logs(self) -> str:
        return "\n".join(p.output() for p in self.processes if p.name == "relay")

    def worker_logs(self) -> str:
        return "\n".join(p.output() for p in self.processes if p.name == "worker")

    def worker_log_lines(self, event: str) -> list[dict[str, Any]]:
        """The workers' JSON log lines of one event."""
        lines = (line for line in self.worker_logs().splitlines() if line.startswith("{"))
        return [entry for entry in map(json.loads, lines) if entry.get("event") == event]


def purge(broker: str, *, delete: bool = False) -> None:
    """Empty (or remove) this session's queue on ``broker``."""
    with Connection(broker) as connection:
        channel = connection.default_channel
        with contextlib.suppress(Exception):  # a queue not declared yet is empty
            if delete:
                channel.queue_delete(TEST_QUEUE)
            else:
                channel.queue_purge(TEST_QUEUE)


@pytest.fixture(scope="session", autouse=True)
def _remove_session_queues() -> Iterator[None]:
    yield
    for broker, port in ((REDIS_URL, 6379), (AMQP_URL, 5672)):
        if service_up("127.0.0.1", port):
            purge(broker, delete=True)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
        url = REDIS_URL
    else:
        require_service("RabbitMQ", "127.0.0.1", 5672)
        url = AMQP_URL
    purge(url)
    return url


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    purge(REDIS_URL)
    return REDIS_URL


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def make_cluster(pg_url: str, tmp_path: Path) -> Iterator[ClusterFactory]:
    clusters: list[Cluster] = []

    def build(broker: str, **extra: str) -> Cluster:
        env = {
            **os.environ,
            "STATEWRIGHT_DATABASE_URL": pg_url,
            "STATEWRIGHT_BROKER_URL": broker,
            "STATEWRIGHT_WORKFLOWS": "tests.sample_workflows",
            "STATEWRIGHT_LEASE_GRACE": "1",
            "STATEWRIGHT_DISPATCH_TIMEOUT": "30",
            "STATEWRIGHT_RELAY_INTERVAL": "0.2",
            "STATEWRIGHT_LOG_FORMAT": "json",
            "STATEWRIGHT_DEFAULT_QUEUE": TEST_QUEUE,
            "PYTHONPATH": str(ROOT),
            **extra,
        }
        settings = Settings.from_env(env)
        cluster = Cluster(env, tmp_path, engine=Engine(settings, WORKFLOWS))
        clusters.append(cluster)
        return cluster

    yield build
    for cluster in clusters:
        cluster.stop()
        cluster.engine.close()
        for engine in cluster.owned:
            engine.close()


# the relocation fixtures are shared with the real-worker relocation test
from tests.workflows.conftest import encrypted_export, keys, source_url  # noqa: E402, F401
