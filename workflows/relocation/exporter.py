"""Exporting organizations from a source installation's database into format v1."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from statewright.config import parse_database_url
from statewright.errors import InvalidParamsError
from statewright.models.domain import (
    Organization,
    OrganizationMember,
    Project,
    ProjectTeam,
    Team,
    User,
)
from statewright.workflows.relocation.format import Record, seal, write_document

EXPORTED_TABLES = (Organization, User, OrganizationMember, Team, Project, ProjectTeam)


def check_source(source_url: str) -> None:
    """Refuse a source that is not an installation's database before anything is written:
    a SQLite file that does not exist (connecting would create it), a database that
    cannot be reached, or one without the tables an export reads."""
    url = make_url(parse_database_url(source_url))
    shown = url.render_as_string(hide_password=True)
    database = url.database or ""
    on_disk = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if on_disk and not Path(database).is_file():
        raise InvalidParamsError(f"source database {shown}: no such file {database!r}")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    except SQLAlchemyError as error:
        cause = str(getattr(error, "orig", None) or error).strip()
        raise InvalidParamsError(f"cannot read source database {shown}: {cause}") from None
    finally:
        engine.dispose()
    missing = [m.__tablename__ for m in EXPORTED_TABLES if m.__tablename__ not in tables]
    if missing:
        raise InvalidParamsError(
            f"source database {shown} has no table {', '.join(missing)}; it is not a "
            "statewright installation's database (or was never migrated)"
        )


def export_organizations(
    source_url: str,
    slugs: Sequence[str],
    target: IO[bytes],
    *,
    compress: bool = True,
    public_key: rsa.RSAPublicKey | None = None,
) -> dict[str, int]:
    """Write the organizations ``slugs`` (with members, users, teams, projects) to ``target``.

    Returns the number of records per section.
    """
    engine = create_engine(parse_database_url(source_url))
    counts: dict[str, int] = {}
    try:
        with engine.connect() as connection, tempfile.SpooledTemporaryFile(1 << 24) as plain:
            org_ids = _org_ids(connection, slugs)
            source = {
                "installation": make_url(engine.url)
                .render_as_string(hide_password=True)
                .split("@")[-1],
                "exported_at": datetime.now(UTC).isoformat(),
            }
            write_document(plain, source, _sections(connection, org_ids, counts))
            seal(plain, target, compress=compress, public_key=public_key)
    finally:
        engine.dispose()
    return counts


def _org_ids(connection: Connection, slugs: Sequence[str]) -> list[int]:
    found = dict(
        connection.execute(
            select(Organization.slug, Organization.id).where(Organization.slug.in_(slugs))
        ).all()
    )
    missing = [slug for slug in slugs if slug not in found]
    if missing:
        known = connection.execute(select(Organization.slug).order_by(Organization.slug).limit(20))
        raise InvalidParamsError(
            f"organization {missing[0]!r} is not in the source database; it has: "
            f"{', '.join(known.scalars()) or '(no organizations)'}"
        )
    return [found[slug] for slug in slugs]


def _sections(
    connection: Connection, org_ids: list[int], counts: dict[str, int]
) -> Iterator[tuple[str, Iterator[Record]]]:
    members = select(OrganizationMember.user_id).where(
        OrganizationMember.organization_id.in_(org_ids)
    )
    queries: list[tuple[str, Any]] = [
        (
            "organizations",
            select(Organization.id, Organization.slug, Organization.name)
            .where(Organization.id.in_(org_ids))
            .order_by(Organization.id),
        ),
        (
            "users",
            select(User.id, User.username, User.email, User.name)
            .where(User.id.in_(members))
            .order_by(User.id),
        ),
        (
            "members",
            select(
                OrganizationMember.organization_id,
                OrganizationMember.user_id,
                OrganizationMember.role,
            )
            .where(OrganizationMember.organization_id.in_(org_ids))
            .order_by(OrganizationMember.id),
        ),
        (
            "teams",
            select(Team.id, Team.organization_id, Team.slug, Team.name)
            .where(Team.organization_id.in_(org_ids))
            .order_by(Team.id),
        ),
        (
            "projects",
            select(Project.id, Project.organization_id, Project.slug, Project.name)
            .where(Project.organization_id.in_(org_ids))
            .order_by(Project.id),
        ),
        (
            "project_teams",
            select(ProjectTeam.project_id, ProjectTeam.team_id)
            .join(Project, Project.id == ProjectTeam.project_id)
            .where(Project.organization_id.in_(org_ids))
            .order_by(ProjectTeam.project_id, ProjectTeam.team_id),
        ),
    ]
    for section, query in queries:
        yield section, _rows(connection, section, query, counts)


def _rows(
    connection: Connection, section: str, query: Any, counts: dict[str, int]
) -> Iterator[Record]:
    counts[section] = 0
    result = connection.execution_options(yield_per=2000).execute(query)
    for row in result.mappings():
        counts[section] += 1
        yield dict(row)
