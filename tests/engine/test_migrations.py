"""Migrations are the only way a schema is made, and they match the models exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from statewright import migrate
from statewright.migrate import alembic_config
from statewright.models import metadata
from tests.conftest import PG_SERVER, SESSION, require_service


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"statewright_migrations_{SESSION}"
    admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    yield f"{PG_SERVER}/{name}"
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def differences(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        found = compare_metadata(context, metadata)
    engine.dispose()
    return list(found)


def test_upgrade_head_matches_the_models(empty_database: str) -> None:
    """After `upgrade head`, autogenerate finds no difference between models and schema."""
    migrate(empty_database)
    assert differences(empty_database) == []


def test_hot_query_indexes_exist(empty_database: str) -> None:
    """Claim, relay and reaper queries each have their index."""
    migrate(empty_database)
    engine = create_engine(empty_database)
    inspector = inspect(engine)
    run_indexes = {i["name"] for i in inspector.get_indexes("workflow_runs")}
    outbox_indexes = {i["name"] for i in inspector.get_indexes("workflow_outbox")}
    assert inspector.get_pk_constraint("workflow_runs")["constrained_columns"] == ["id"]
    assert "ix_workflow_runs_lease" in run_indexes
    assert "ix_workflow_outbox_due" in outbox_indexes
    engine.dispose()


def test_downgrade_and_upgrade_again(empty_database: str) -> None:
    """The migrations walk down to nothing and back up cleanly."""
    migrate(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    engine = create_engine(empty_database)
    assert not inspect(engine).has_table("workflow_runs")
    engine.dispose()
    migrate(empty_database)
    assert differences(empty_database) == []
