"""Schema migrations through Alembic, the only way a statewright schema is made.

Alembic is imported when a migration is asked for, not with this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the project's migrations against ``database_url``."""
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    """The revisions a fully migrated database is at."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(connection_url: str) -> set[str]:
    """The revisions the database at ``connection_url`` is at (empty: never migrated)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(connection_url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
