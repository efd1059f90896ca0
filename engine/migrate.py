"""Schema migrations through Alembic, the only way a statewright schema is made.

The engine's tables are one Alembic branch (``engine``); each workflow that brings
tables of its own declares its branch (``Workflow.migrations``) and that branch is
applied only when the workflow is registered. An application's branches live in its
own package beside statewright's (``Migrations(versions=...)``); all of them share one
``alembic_version`` table. See ``alembic/README.md``.

Alembic is imported when a migration is asked for, not with this module.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from statewright.errors import ConfigurationError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from statewright.registry import TaskOwner, WorkflowItem

_HERE = Path(__file__).resolve().parent
#: Installed from a wheel the migrations are ``statewright/migrations``; in the repository
#: they are the top-level ``alembic`` folder beside ``engine``.
_LOCATIONS = (_HERE / "migrations", _HERE.parent / "alembic")

#: The branch label of the engine's own tables.
ENGINE_BRANCH = "engine"
_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: Before the schema was split into branches, one linear chain ended at ``0011`` and
#: made every shipped workflow's tables; such a database has them at these revisions.
_SINGLE_CHAIN_HEAD = "0011"
#: (the installation branch, which both depend on, is recorded through them)
_SINGLE_CHAIN_ADOPTS = ("relocation_0003", "weekly_reports_0001")
_SINGLE_CHAIN_TABLES = ("organizations", "relocations", "relocation_emails", "report_schedules")
_SINGLE_CHAIN_REVISIONS = frozenset(f"{n:04d}" for n in range(1, 11))


@dataclass(frozen=True, slots=True)
class Migrations:
    """The Alembic branch holding a workflow's own tables, applied when it is registered.

    ``versions`` names the importable package whose folder holds the branch's revision
    files (an application's own, e.g. ``"myapp.migrations"``); ``None`` means the branch
    ships with statewright.
    """

    branch: str
    versions: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.branch, str) or not _LABEL.match(self.branch):
            raise ConfigurationError(
                f"migrations branch {self.branch!r} is not allowed; use lowercase letters, "
                "digits and _ (a name starting with a letter)"
            )
        if self.branch == ENGINE_BRANCH:
            raise ConfigurationError(f"migrations branch {ENGINE_BRANCH!r} is the engine's own")
        if self.versions is not None and not (
            isinstance(self.versions, str) and self.versions.strip()
        ):
            raise ConfigurationError(
                f"migrations versions {self.versions!r} is not a package name "
                "(e.g. 'myapp.migrations'), or None for statewright's own"
            )


class AppliedRevision(NamedTuple):
    """One revision an upgrade ran."""

    revision: str
    description: str


def script_location() -> Path:
    """The folder holding statewright's ``env.py`` and ``versions``."""
    for location in _LOCATIONS:
        if (location / "env.py").is_file():
            return location
    searched = ", ".join(str(location) for location in _LOCATIONS)
    raise FileNotFoundError(f"statewright's migrations are missing (looked in {searched})")


def declared_migrations(owners: Iterable[TaskOwner]) -> list[Migrations]:
    """The branches the registered workflows and task groups declare, each once."""
    found: list[Migrations] = []
    for owner in owners:
        declared = getattr(owner.instance, "migrations", None)
        if declared is None:
            continue
        if not isinstance(declared, Migrations):
            raise ConfigurationError(
                f"{owner.name!r} declares migrations = {declared!r}; expected "
                "Migrations('<branch>', versions='<package>') or None"
            )
        if declared not in found:
            found.append(declared)
    return found


def version_locations(migrations: Iterable[Migrations]) -> list[Path]:
    """statewright's versions folder, then each application package's folder."""
    found = [script_location() / "versions"]
    for declared in migrations:
        if declared.versions is None:
            continue
        folder = _package_folder(declared)
        if folder not in found:
            found.append(folder)
    return found


def _package_folder(declared: Migrations) -> Path:
    name = declared.versions
    assert name is not None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise ConfigurationError(
            f"migrations branch {declared.branch!r}: versions package {name!r} cannot be "
            "found; name an importable package (a folder) holding its revision files"
        )
    return Path(folders[0]).resolve()


def alembic_config(database_url: str, migrations: Iterable[Migrations] = ()) -> Config:
    """An Alembic config for statewright's migrations (and ``migrations``' own version
    locations) against ``database_url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_path_separator", "os")
    locations = os.pathsep.join(str(p) for p in version_locations(migrations))
    config.set_main_option("version_locations", locations)
    config.attributes["database_url"] = database_url
    return config


def _owners(workflows: Iterable[WorkflowItem] | None) -> list[TaskOwner]:
    from statewright.config import Settings
    from statewright.registry import as_definitions, load_workflow_modules

    if workflows is None:
        return load_workflow_modules(Settings().workflow_modules)
    return as_definitions(workflows)


def branches(workflows: Iterable[WorkflowItem] | None = None) -> list[Migrations]:
    """The branches a database for ``workflows`` needs besides the engine's (default: the
    workflows shipped with statewright)."""
    return declared_migrations(_owners(workflows))


def upgrade(
    database_url: str, workflows: Iterable[WorkflowItem] | None = None
) -> list[AppliedRevision]:
    """Bring the database at ``database_url`` up to date for ``workflows``: the engine's
    branch, then each branch they declare (default: the workflows shipped with
    statewright, as ``Settings().workflow_modules`` names them). Returns the revisions run.
    """
    from alembic import command

    wanted = branches(workflows)
    config = alembic_config(database_url, wanted)
    script = _script(config)
    targets = [ENGINE_BRANCH, *(_checked_label(script, m) for m in wanted)]
    _adopt_single_chain(database_url)
    applied: list[AppliedRevision] = []
    config.attributes["applied"] = applied
    for label in targets:
        command.upgrade(config, f"{label}@head")
    return applied


def wanted_heads(
    workflows: Iterable[WorkflowItem] | None = None, database_url: str = "sqlite://"
) -> set[str]:
    """The revisions a database fully migrated for ``workflows`` has reached."""
    wanted = branches(workflows)
    script = _script(alembic_config(database_url, wanted))
    labels = [ENGINE_BRANCH, *(_checked_label(script, m) for m in wanted)]
    return {_head_of(script, label) for label in labels}


def missing_revisions(
    database_url: str, workflows: Iterable[WorkflowItem] | None = None
) -> list[str]:
    """Branch heads ``workflows`` need that the database has not reached (sorted)."""
    wanted = branches(workflows)
    script = _script(alembic_config(database_url, wanted))
    current = current_revisions(database_url)
    reached: set[str] = set()
    if current:
        reached = {rev.revision for rev in script.iterate_revisions(tuple(current), "base") if rev}
    labels = [ENGINE_BRANCH, *(_checked_label(script, m) for m in wanted)]
    return sorted({_head_of(script, label) for label in labels} - reached)


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


def _script(config: Config) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config)


def _head_of(script: ScriptDirectory, label: str) -> str:
    revision = script.get_revision(f"{label}@head")
    assert revision is not None
    return revision.revision


def _checked_label(script: ScriptDirectory, declared: Migrations) -> str:
    """The branch label, refused with the known ones if no revision carries it."""
    labels: set[str] = set()
    for revision in script.walk_revisions():
        labels.update(revision.branch_labels)
    if declared.branch not in labels:
        where = declared.versions or "statewright's migrations"
        raise ConfigurationError(
            f"migrations branch {declared.branch!r} has no revision labelled with it in "
            f"{where}; branches found: {', '.join(sorted(labels))}"
        )
    return declared.branch


def _adopt_single_chain(database_url: str) -> None:
    """A database made by the single chain (at ``0011``, every shipped workflow's tables
    made) gets those tables' branches recorded at the revisions that made them, so the
    upgrade that follows makes nothing twice and drops nothing."""
    from sqlalchemy import create_engine, inspect, text

    current = current_revisions(database_url)
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            single_chain = current == {_SINGLE_CHAIN_HEAD} and all(
                inspect(connection).has_table(t) for t in _SINGLE_CHAIN_TABLES
            )
            older = len(current) == 1 and current <= _SINGLE_CHAIN_REVISIONS
            if older and inspect(connection).has_table("relocations"):
                raise ConfigurationError(
                    f"the database is at revision {next(iter(current))} of statewright's "
                    f"single migration chain; upgrade it to {_SINGLE_CHAIN_HEAD} with "
                    "statewright 0.1.0 first, then run `statewright migrate` again"
                )
            if single_chain:
                insert = text("INSERT INTO alembic_version (version_num) VALUES (:revision)")
                for revision in _SINGLE_CHAIN_ADOPTS:
                    connection.execute(insert, {"revision": revision})
    finally:
        engine.dispose()


def describe(applied: Iterable[AppliedRevision]) -> list[str]:
    """One line per revision run, for people."""
    return [f"{a.revision}: {a.description}" for a in applied]


def record_applied(config: Config, step: Any) -> None:
    """Alembic's ``on_version_apply``: remember each revision an upgrade ran."""
    applied = config.attributes.get("applied")
    if applied is None or not step.is_upgrade or step.is_stamp:
        return
    revision = step.up_revision
    applied.append(AppliedRevision(revision.revision, (revision.doc or "").strip()))
