"""Migrations are the only way a schema is made, and they match the models exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from statewright import ConfigurationError, StepContext, Workflow, migrate, step
from statewright.migrate import (
    Migrations,
    alembic_config,
    branches,
    current_revisions,
    missing_revisions,
)
from statewright.models import metadata
from statewright.workflows import Onboarding
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
    command.downgrade(alembic_config(empty_database, branches()), "base")
    engine = create_engine(empty_database)
    assert not inspect(engine).has_table("workflow_runs")
    engine.dispose()
    migrate(empty_database)
    assert differences(empty_database) == []


ENGINE_TABLES = {
    "workflow_runs",
    "workflow_transitions",
    "workflow_outbox",
    "workflow_schedules",
    "workflow_maps",
    "workflow_children",
    "alembic_version",
}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_only_registered_workflows_get_their_tables(empty_database: str) -> None:
    """With only Onboarding registered the database gets the engine's tables and no
    domain table; registering the shipped workflows later adds theirs."""
    applied = migrate(empty_database, [Onboarding])
    assert tables(empty_database) == ENGINE_TABLES
    assert applied[0].revision == "0001"
    assert not any(a.revision.startswith("relocation") for a in applied)
    later = [a.revision for a in migrate(empty_database)]
    assert later[0] == "installation_0001"
    assert {"relocation_0003", "weekly_reports_0001"} <= set(later)
    assert differences(empty_database) == []
    assert migrate(empty_database) == []


def test_a_single_chain_database_upgrades_keeping_its_rows(empty_database: str) -> None:
    """A database the single migration chain made (every table, at revision 0011) is
    adopted: its branches are recorded, its rows kept, the engine's revisions since
    0011 applied, and it downgrades cleanly."""
    migrate(empty_database)
    command.downgrade(alembic_config(empty_database, branches()), "engine@0011")
    engine = create_engine(empty_database)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0011')"))
        connection.execute(
            text(
                "INSERT INTO organizations (slug, name, created_at) "
                "VALUES ('acme', 'Acme', '2026-01-01 00:00:00')"
            )
        )
    assert current_revisions(empty_database) == {"0011"}
    assert missing_revisions(empty_database) == ["0012", "relocation_0003", "weekly_reports_0001"]
    assert [a.revision for a in migrate(empty_database)] == ["0012"]
    assert current_revisions(empty_database) == {"0012", "relocation_0003", "weekly_reports_0001"}
    assert missing_revisions(empty_database) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT slug FROM organizations")).scalars().all() == [
            "acme"
        ]
    engine.dispose()
    assert differences(empty_database) == []
    command.downgrade(alembic_config(empty_database, branches()), "base")
    assert tables(empty_database) == {"alembic_version"}


def test_an_older_single_chain_database_is_refused(tmp_path: Path) -> None:
    """A single-chain database short of 0011 is refused with what to do, not half-migrated."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('0008')"))
    engine.dispose()
    with pytest.raises(ConfigurationError, match=r"revision 0008 .* upgrade it to 0011"):
        migrate(url)


class Unmigrated(Workflow):
    """A workflow naming a migrations branch that does not exist."""

    name = "unmigrated"
    transitions = [("done", "working", "finished")]
    terminal = ["finished"]
    migrations = Migrations("no_such_branch")

    @step("working", initial=True)
    def working(self, ctx: StepContext) -> str:
        return "done"


def test_an_unknown_branch_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    """A workflow whose branch no revision carries is refused before anything runs."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigurationError, match=r"'no_such_branch'.*found: engine, installation"):
        migrate(url, [Unmigrated])
    assert current_revisions(url) == set()


@pytest.mark.parametrize(
    ("branch", "versions"),
    [("Bad-Name", None), ("engine", None), ("ok", "")],
)
def test_bad_migrations_declarations_are_refused(branch: str, versions: str | None) -> None:
    """A branch label must be a lowercase name other than the engine's; versions a package."""
    with pytest.raises(ConfigurationError, match="migrations"):
        Migrations(branch, versions=versions)
