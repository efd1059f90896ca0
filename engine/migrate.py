"""Schema migrations through Alembic, the only way a statewright schema is made.

Alembic is imported when a migration is asked for, not with this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = Path(__file__).resolve().parent
#: Installed from a wheel the migrations are ``statewright/migrations``; in the repository
#: they are the top-level ``alembic`` folder beside ``engine``.
_LOCATIONS = (_HERE / "migrations", _HERE.parent / "alembic")


def script_location() -> Path:
    """The folder holding statewright's ``env.py`` and ``versions``."""
    for location in _LOCATIONS:
        if (location / "env.py").is_file():
            return location
    searched = ", ".join(str(location) for location in _LOCATIONS)
    raise FileNotFoundError(f"statewright's migrations are missing (looked in {searched})")


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the project's migrations against ``database_url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
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
