"""pytest fixtures for workflow authors (loaded automatically when statewright is installed).

Override ``statewright_workflows`` to return your workflow classes (or configured
instances); ``statewright_harness`` then steps them on a fresh SQLite database with a
virtual clock::

    @pytest.fixture
    def statewright_workflows():
        return [Onboarding]

    def test_onboarding(statewright_engine, statewright_harness):
        run = statewright_engine.start("onboarding", {"email": "kim@example.com"})
        assert statewright_harness.run(run.id).status == "succeeded"

The database is migrated for those workflows: the engine's tables and each workflow's
own migrations branch (``Workflow.migrations``, an application's included). With
``STATEWRIGHT_TEST_DATABASE_URL`` set to a PostgreSQL URL (its database is only used
to connect), each test gets a database of its own on that server, dropped afterwards.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from statewright.api import Engine
from statewright.clock import VirtualClock
from statewright.config import Settings
from statewright.metrics import InMemoryMetrics
from statewright.migrate import upgrade
from statewright.registry import WorkflowItem
from statewright.testing import WorkflowHarness


@pytest.fixture
def statewright_workflows() -> list[WorkflowItem]:
    """The workflows under test; override this fixture in your conftest."""
    raise pytest.UsageError("override the statewright_workflows fixture with your workflows")


#: A PostgreSQL server URL: each test then gets a fresh database there (see above).
TEST_DATABASE_URL = "STATEWRIGHT_TEST_DATABASE_URL"


@pytest.fixture
def statewright_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database for one test: a SQLite file, or a fresh PostgreSQL database on
    the server ``STATEWRIGHT_TEST_DATABASE_URL`` names (dropped after the test)."""
    server = os.environ.get(TEST_DATABASE_URL, "").strip()
    if not server or server.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'statewright.db'}"
        return
    base = make_url(Settings(database_url=server).database_url)
    if base.get_backend_name() != "postgresql":
        raise pytest.UsageError(
            f"{TEST_DATABASE_URL} {server!r} is not a PostgreSQL URL (or sqlite, or unset)"
        )
    name = f"statewright_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def statewright_engine(
    statewright_database_url: str, statewright_workflows: list[WorkflowItem]
) -> Iterator[Engine]:
    """An engine on a database migrated for the workflows under test, a virtual clock and
    in-memory metrics; each step is its own delivery, so the harness steps them one at
    a time."""
    url = statewright_database_url
    upgrade(url, statewright_workflows)
    engine = Engine(
        Settings(database_url=url, continue_for=0.0),
        statewright_workflows,
        clock=VirtualClock(),
        metrics=InMemoryMetrics(),
        rng=random.Random(0),
    )
    yield engine
    engine.close()


@pytest.fixture
def statewright_harness(statewright_engine: Engine) -> WorkflowHarness:
    """Steps ``statewright_engine`` one task at a time."""
    return WorkflowHarness(statewright_engine)
