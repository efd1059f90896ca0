"""Importing records into an installation: batched inserts with primary keys remapped.

The same code imports into the target (inside the importing step's transaction,
so nothing partial is ever visible) and into a validation sandbox.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from statewright.models.domain import (
    Organization,
    OrganizationMember,
    Project,
    ProjectTeam,
    Team,
    User,
)
from statewright.workflows.relocation.format import Record

MAX_FINDINGS = 20


class ImportProblemError(Exception):
    """Records that refer to something the export does not contain."""

    def __init__(self, findings: list[dict[str, str]]) -> None:
        super().__init__(f"{len(findings)} problem(s), first: {findings[0]['problem']}")
        self.findings = findings


@dataclass
class ImportResult:
    """What an import wrote."""

    rows: dict[str, int] = field(default_factory=dict)
    organization_ids: list[int] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)


class Importer:
    """Streams sections in document order into the session, batch by batch."""

    def __init__(self, session: Session, *, now: datetime, batch: int = 1000) -> None:
        self.session = session
        self.now = now
        self.batch = batch
        self.maps: dict[str, dict[int, int]] = {
            "organizations": {},
            "users": {},
            "teams": {},
            "projects": {},
        }
        self.org_of: dict[str, dict[int, int]] = {"teams": {}, "projects": {}}
        self.result = ImportResult()
        self.findings: list[dict[str, str]] = []

    def run(self, records: Iterable[tuple[str, Record]]) -> ImportResult:
        for section, batch in _batches(records, self.batch):
            getattr(self, f"_import_{section}")(batch)
            if len(self.findings) >= MAX_FINDINGS:
                break
        if self.findings:
            raise ImportProblemError(self.findings[:MAX_FINDINGS])
        self.result.organization_ids = sorted(self.maps["organizations"].values())
        return self.result

    # -- one method per section ----------------------------------------------------

    def _import_organizations(self, batch: list[Record]) -> None:
        rows = [{"slug": r["slug"], "name": r["name"], "created_at": self.now} for r in batch]
        self._insert(Organization.__table__, "organizations", batch, rows)

    def _import_users(self, batch: list[Record]) -> None:
        taken = set(
            self.session.execute(
                select(User.username).where(User.username.in_([r["username"] for r in batch]))
            ).scalars()
        )
        rows = []
        for record in batch:
            username = record["username"]
            original = None
            if username in taken:
                original, username = username, self._free_username(username)
                self.result.renamed.append((original, username))
            rows.append(
                {
                    "username": username,
                    "email": record["email"],
                    "name": record.get("name", ""),
                    "is_unclaimed": True,
                    "original_username": original,
                    "created_at": self.now,
                }
            )
        self._insert(User.__table__, "users", batch, rows)

    def _import_members(self, batch: list[Record]) -> None:
        rows = [
            {"organization_id": org, "user_id": user, "role": r["role"]}
            for r in batch
            if (org := self._ref("organizations", r["organization_id"], "members")) is not None
            and (user := self._ref("users", r["user_id"], "members")) is not None
        ]
        self._insert(OrganizationMember.__table__, "members", [], rows)

    def _import_teams(self, batch: list[Record]) -> None:
        self._import_owned(Team.__table__, "teams", batch)

    def _import_projects(self, batch: list[Record]) -> None:
        self._import_owned(Project.__table__, "projects", batch)

    def _import_project_teams(self, batch: list[Record]) -> None:
        rows = []
        for r in batch:
            project = self._ref("projects", r["project_id"], "project_teams")
            team = self._ref("teams", r["team_id"], "project_teams")
            if project is None or team is None:
                continue
            if self.org_of["projects"][project] != self.org_of["teams"][team]:
                self._find(
                    "project_teams",
                    f"project {r['project_id']} and team {r['team_id']} "
                    "belong to different organizations",
                )
                continue
            rows.append({"project_id": project, "team_id": team})
        self._insert(ProjectTeam.__table__, "project_teams", [], rows)

    # -- helpers ---------------------------------------------------------------------

    def _import_owned(self, table: Any, section: str, batch: list[Record]) -> None:
        kept, rows = [], []
        for r in batch:
            org = self._ref("organizations", r["organization_id"], section)
            if org is not None:
                kept.append(r)
                rows.append({"organization_id": org, "slug": r["slug"], "name": r["name"]})
        self._insert(table, section, kept, rows)
        for record, row in zip(kept, rows, strict=True):
            self.org_of[section][self.maps[section][record["id"]]] = row["organization_id"]

    def _insert(
        self, table: Any, section: str, batch: list[Record], rows: list[dict[str, Any]]
    ) -> None:
        if not rows:
            return
        self.result.rows[section] = self.result.rows.get(section, 0) + len(rows)
        if section not in self.maps:
            self.session.execute(insert(table), rows)
            return
        new_ids = self._allocate_ids(table, len(rows))
        if new_ids is None:
            statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            new_ids = list(self.session.execute(statement, rows).scalars().all())
        else:
            for row, new_id in zip(rows, new_ids, strict=True):
                row["id"] = new_id
            self.session.execute(insert(table), rows)
        mapping = self.maps[section]
        for record, new_id in zip(batch, new_ids, strict=True):
            if record["id"] in mapping:
                self._find(section, f"id {record['id']} is used twice")
            mapping[record["id"]] = new_id

    def _allocate_ids(self, table: Any, count: int) -> list[int] | None:
        """On PostgreSQL, ``count`` new ids from the table's sequence in one round trip, so
        the rows go in as a plain batch instead of an ordered ``INSERT … RETURNING``."""
        if self.session.get_bind().dialect.name != "postgresql":
            return None
        statement = text(
            "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"
        )
        ids = self.session.execute(statement, {"table": table.name, "count": count}).scalars()
        return list(ids)

    def _ref(self, target: str, source_id: int, section: str) -> int | None:
        found = self.maps[target].get(source_id)
        if found is None:
            self._find(
                section,
                f"a record refers to {target} id {source_id}, which the export does not contain",
            )
        return found

    def _find(self, section: str, problem: str) -> None:
        self.findings.append({"section": section, "problem": f"{section}: {problem}"})

    def _free_username(self, username: str) -> str:
        while True:
            candidate = f"{username[:140]}-{secrets.token_hex(4)}"
            exists = self.session.execute(select(User.id).where(User.username == candidate)).first()
            if exists is None:
                return candidate


def _batches(
    records: Iterable[tuple[str, Record]], size: int
) -> Iterator[tuple[str, list[Record]]]:
    section, batch = "", list[Record]()
    for name, record in records:
        if name != section or len(batch) >= size:
            if batch:
                yield section, batch
            section, batch = name, []
        batch.append(record)
    if batch:
        yield section, batch
