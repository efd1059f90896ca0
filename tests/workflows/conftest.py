"""Relocation fixtures: a source installation, keys, a target engine on a virtual clock."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from statewright import Engine, InMemoryMetrics, Settings, VirtualClock, migrate
from statewright.models import Organization, User
from statewright.testing import WorkflowHarness
from statewright.workflows.relocation import Limits, Relocation, RelocationConfig
from statewright.workflows.relocation.crypto import generate_keypair, load_public_key
from statewright.workflows.relocation.exporter import export_organizations
from statewright.workflows.relocation.sample import SampleShape, build_sample


@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path

    def public_key(self) -> Any:
        return load_public_key(self.public.read_bytes())


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The target installation's key pair (2048 bits, to keep the suite quick)."""
    private, public = generate_keypair(tmp_path_factory.mktemp("keys"), bits=2048)
    return Keys(private, public)


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    private, public = generate_keypair(tmp_path_factory.mktemp("other-keys"), bits=2048)
    return Keys(private, public)


@pytest.fixture(scope="session")
def source_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A source installation with three organizations and 60 users (some in two orgs)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('source') / 'source.db'}"
    migrate(url)
    build_sample(
        url,
        SampleShape(
            orgs=3,
            users=60,
            orgs_per_user=2,
            teams_per_org=3,
            projects_per_org=4,
            teams_per_project=2,
        ),
    )
    return url


@pytest.fixture(scope="session")
def encrypted_export(source_url: str, keys: Keys) -> bytes:
    """All three sample organizations, gzipped and encrypted to the target's key."""
    target = io.BytesIO()
    export_organizations(
        source_url, ["org-1", "org-2", "org-3"], target, compress=True, public_key=keys.public_key()
    )
    return target.getvalue()


OWNER = "owner@target.example"


@dataclass
class Target:
    """The installation being relocated into, with its engine and harness."""

    engine: Engine
    harness: WorkflowHarness
    config: RelocationConfig
    mail_dir: Path

    def mails(self) -> list[str]:
        return (
            sorted(p.read_text() for p in self.mail_dir.glob("*.eml"))
            if self.mail_dir.exists()
            else []
        )

    def count(self, model: Any) -> int:
        with self.engine.db.reads() as session:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())


TargetFactory = Callable[..., Target]


@pytest.fixture
def make_target(database_url: str, keys: Keys, tmp_path: Path) -> TargetFactory:
    built: list[Engine] = []

    def build(**config: Any) -> Target:
        mail_dir = tmp_path / "mail"
        base = RelocationConfig(
            limits=Limits(
                max_file_bytes=2_000_000,
                max_decompressed_bytes=20_000_000,
                max_orgs=10,
                max_users=1000,
            ),
            private_key_path=keys.private,
            validation_interval=timedelta(seconds=5),
            validation_timeout=timedelta(seconds=60),
            max_validation_runs=3,
            email_backend=f"file:{mail_dir}",
        )
        relocation_config = replace(base, **config)
        engine = Engine(
            Settings(database_url=database_url),
            [Relocation(relocation_config)],
            clock=VirtualClock(),
            metrics=InMemoryMetrics(),
            rng=random.Random(3),
        )
        built.append(engine)
        with engine.db.transaction() as session:
            session.add(
                User(username="owner", email=OWNER, name="Owner", created_at=datetime.now(UTC))
            )
        return Target(engine, WorkflowHarness(engine), relocation_config, mail_dir)

    yield build  # type: ignore[misc]
    for engine in built:
        engine.close()


@pytest.fixture
def target(make_target: TargetFactory) -> Target:
    return make_target()


def snapshot(url: str, org_slugs: list[str] | None = None) -> dict[str, set[tuple[Any, ...]]]:
    """Every relocated record of an installation, by natural keys (no ids)."""
    from statewright.models import OrganizationMember, Project, ProjectTeam, Team

    engine = create_engine(url)
    with engine.connect() as connection:
        orgs = dict(connection.execute(select(Organization.id, Organization.slug)).all())
        if org_slugs is not None:
            orgs = {i: s for i, s in orgs.items() if s in org_slugs}
        users = dict(connection.execute(select(User.id, User.username)).all())
        teams = {
            i: (orgs.get(o), s)
            for i, o, s in connection.execute(
                select(Team.id, Team.organization_id, Team.slug)
            ).all()
        }
        projects = {
            i: (orgs.get(o), s)
            for i, o, s in connection.execute(
                select(Project.id, Project.organization_id, Project.slug)
            ).all()
        }
        result = {
            "organizations": {
                (s, n)
                for i, s, n in connection.execute(
                    select(Organization.id, Organization.slug, Organization.name)
                ).all()
                if i in orgs
            },
            "members": {
                (orgs[o], users[u], r)
                for o, u, r in connection.execute(
                    select(
                        OrganizationMember.organization_id,
                        OrganizationMember.user_id,
                        OrganizationMember.role,
                    )
                ).all()
                if o in orgs
            },
            "teams": {
                (orgs[o], s, n)
                for o, s, n in connection.execute(
                    select(Team.organization_id, Team.slug, Team.name)
                ).all()
                if o in orgs
            },
            "projects": {
                (orgs[o], s, n)
                for o, s, n in connection.execute(
                    select(Project.organization_id, Project.slug, Project.name)
                ).all()
                if o in orgs
            },
            "project_teams": {
                (*projects[p], teams[t][1])
                for p, t in connection.execute(
                    select(ProjectTeam.project_id, ProjectTeam.team_id)
                ).all()
                if projects[p][0] is not None
            },
        }
        members = {u for _, u, _ in result["members"]}
        result["users"] = {
            (u, e, n)
            for u, e, n in connection.execute(select(User.username, User.email, User.name)).all()
            if u in members
        }
    engine.dispose()
    return result
