"""A sample installation to export from: organizations with users, teams and projects."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, insert, select

from statewright.config import parse_database_url
from statewright.models.domain import (
    Organization,
    OrganizationMember,
    Project,
    ProjectTeam,
    Team,
    User,
)


@dataclass(frozen=True, slots=True)
class SampleShape:
    """How big the sample is."""

    orgs: int = 3
    users: int = 300
    orgs_per_user: int = 1
    teams_per_org: int = 4
    projects_per_org: int = 6
    teams_per_project: int = 2
    slug_prefix: str = "org"


def build_sample(database_url: str, shape: SampleShape, *, seed: int = 7) -> list[str]:
    """Fill a migrated database with a sample installation; returns the org slugs."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    engine = create_engine(parse_database_url(database_url))
    slugs = [f"{shape.slug_prefix}-{i}" for i in range(1, shape.orgs + 1)]
    with engine.begin() as connection:
        connection.execute(
            insert(Organization),
            [
                {"slug": slug, "name": slug.replace("-", " ").title(), "created_at": now}
                for slug in slugs
            ],
        )
        org_ids = list(
            connection.execute(
                select(Organization.id)
                .where(Organization.slug.in_(slugs))
                .order_by(Organization.id)
            ).scalars()
        )
        _insert_batches(
            connection,
            User,
            (
                {
                    "username": f"{shape.slug_prefix}-user{i}",
                    "email": f"user{i}@{shape.slug_prefix}.example",
                    "name": f"User {i}",
                    "created_at": now,
                }
                for i in range(1, shape.users + 1)
            ),
        )
        user_ids = list(
            connection.execute(
                select(User.id)
                .where(User.username.like(f"{shape.slug_prefix}-user%"))
                .order_by(User.id)
            ).scalars()
        )
        _insert_batches(
            connection,
            OrganizationMember,
            (
                {
                    "organization_id": org,
                    "user_id": user,
                    "role": "owner"
                    if index == 0 and n == 0
                    else rng.choice(["manager", "member", "member"]),
                }
                for n, user in enumerate(user_ids)
                for index, org in enumerate(_orgs_of(n, org_ids, shape.orgs_per_user))
            ),
        )
        for org in org_ids:
            _insert_batches(
                connection,
                Team,
                (
                    {"organization_id": org, "slug": f"team-{t}", "name": f"Team {t}"}
                    for t in range(1, shape.teams_per_org + 1)
                ),
            )
            _insert_batches(
                connection,
                Project,
                (
                    {"organization_id": org, "slug": f"project-{p}", "name": f"Project {p}"}
                    for p in range(1, shape.projects_per_org + 1)
                ),
            )
            teams = list(
                connection.execute(select(Team.id).where(Team.organization_id == org)).scalars()
            )
            projects = list(
                connection.execute(
                    select(Project.id).where(Project.organization_id == org)
                ).scalars()
            )
            _insert_batches(
                connection,
                ProjectTeam,
                (
                    {"project_id": project, "team_id": team}
                    for project in projects
                    for team in rng.sample(teams, min(shape.teams_per_project, len(teams)))
                ),
            )
    engine.dispose()
    return slugs


def _orgs_of(n: int, org_ids: list[int], per_user: int) -> list[int]:
    return [org_ids[(n + k) % len(org_ids)] for k in range(min(per_user, len(org_ids)))]


def _insert_batches(connection: Any, model: Any, rows: Any, size: int = 5000) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            connection.execute(insert(model), batch)
            batch = []
    if batch:
        connection.execute(insert(model), batch)
