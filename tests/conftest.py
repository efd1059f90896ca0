"""Shared fixtures: databases (SQLite and PostgreSQL), engines on a virtual clock, services."""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from statewright import Engine, InMemoryMetrics, Settings, VirtualClock, migrate
from statewright.models import metadata
from statewright.testing import WorkflowHarness
from tests.sample_workflows import WORKFLOWS, test_metadata

#: The example application has its own tests, run from the wheel by .ci/example.
collect_ignore = ["example_app"]

REQUIRE_SERVICES = os.environ.get("STATEWRIGHT_REQUIRE_SERVICES") == "1"
PG_SERVER = os.environ.get("STATEWRIGHT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
#: One database and one queue per test session, so concurrent sessions never meet.
SESSION = f"{os.getpid()}"
PG_DATABASE = f"statewright_test_{SESSION}"
TEST_QUEUE = f"statewright-test-{SESSION}"
REDIS_URL = os.environ.get("STATEWRIGHT_TEST_REDIS", "redis://127.0.0.1:6379/5")
AMQP_URL = os.environ.get("STATEWRIGHT_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
#: Every table the migrations make, emptied between PostgreSQL tests.
ALL_TABLES = tuple(table.name for table in reversed(metadata.sorted_tables))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` first, in their order: a parallel run hands them out at its
    start, so none is left running alone at its end while the other process waits."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def service_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down, unless CI demands every service."""
    if service_up(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (STATEWRIGHT_REQUIRE_SERVICES=1)")
    pytest.skip(message)


# -- databases ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    migrate(url)
    setup = create_engine(url)
    test_metadata.create_all(setup)
    setup.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "statewright.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, migrated to head."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {PG_DATABASE}"))
    url = f"{PG_SERVER}/{PG_DATABASE}"
    migrate(url)
    setup = create_engine(url)
    test_metadata.create_all(setup)
    setup.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
    admin.dispose()


#: What the session's tables hold between tests: nothing, and their ids start at 1.
EMPTIED_TABLES = (*ALL_TABLES, "test_effects")


@pytest.fixture(scope="session")
def pg_emptier(pg_database: str) -> Iterator[Callable[[], None]]:
    """Empties every table of the session's database and restarts their ids.

    Equivalent to ``TRUNCATE ... RESTART IDENTITY``, but a ``DELETE`` per table (children
    first) on one kept connection: the tables hold a test's few rows, and ``TRUNCATE``
    costs a new file per table, which made it the most expensive part of a short test.
    """
    # one pooled connection, checked before each use (the chaos suite terminates them)
    cleaner = create_engine(pg_database, pool_size=1, pool_pre_ping=True)
    with cleaner.connect() as connection:
        sequences = connection.execute(
            text(
                "SELECT DISTINCT s.relname FROM pg_class s"
                " JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass"
                " AND d.refclassid = 'pg_class'::regclass"
                " JOIN pg_class t ON t.oid = d.refobjid"
                " WHERE s.relkind = 'S' AND t.relname = ANY(:tables) ORDER BY 1"
            ),
            {"tables": list(EMPTIED_TABLES)},
        ).scalars()
        restart = ", ".join(f"setval('{name}', 1, false)" for name in sequences)
    statements = [f"DELETE FROM {table}" for table in EMPTIED_TABLES]
    if restart:
        statements.append(f"SELECT {restart}")

    def empty() -> None:
        with cleaner.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    yield empty
    cleaner.dispose()


@pytest.fixture
def pg_url(pg_database: str, pg_emptier: Callable[[], None]) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    pg_emptier()
    return pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL (unless a test
    narrows it with ``@pytest.mark.parametrize("database_url", [...], indirect=True)``)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


# -- engines ------------------------------------------------------------------------


EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(database_url: str) -> Iterator[EngineFactory]:
    """Build engines on the test database with a virtual clock and in-memory metrics.

    Each step is its own delivery (``continue_for=0``) unless a test asks otherwise, so
    a harness steps them one at a time whatever the machine's speed.
    """
    built: list[Engine] = []

    def build(workflows: Any = WORKFLOWS, **settings: Any) -> Engine:
        settings.setdefault("continue_for", 0.0)
        engine = Engine(
            Settings(database_url=database_url, **settings),
            workflows,
            clock=VirtualClock(),
            metrics=InMemoryMetrics(),
            rng=random.Random(7),
        )
        built.append(engine)
        return engine

    yield build
    for engine in built:
        engine.close()


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine()


@pytest.fixture
def harness(engine: Engine) -> WorkflowHarness:
    return WorkflowHarness(engine)


@pytest.fixture
def metrics(engine: Engine) -> InMemoryMetrics:
    assert isinstance(engine.metrics, InMemoryMetrics)
    return engine.metrics
