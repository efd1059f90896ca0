"""What a relocation holds beside its run: its files, validation attempts and emails.

The API behind ``statewright relocation show``; it reads, never writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from statewright.api import Engine
from statewright.errors import InvalidParamsError
from statewright.models.relocation import (
    Relocation,
    RelocationEmail,
    RelocationFile,
    RelocationValidation,
    RelocationValidationAttempt,
)
from statewright.queries import RunInfo


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A stored file: ``size`` as the sender had it, ``stored`` bytes kept here."""

    kind: str
    size: int
    stored: int
    sha256: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ValidationAttemptInfo:
    """One sandbox import: pending, valid, invalid (with findings) or timed out."""

    number: int
    status: str
    findings: list[dict[str, Any]]
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class EmailInfo:
    """An email of the relocation; ``sent_at`` is empty until the mail server took it."""

    kind: str
    recipient: str
    subject: str
    created_at: datetime
    sent_at: datetime | None

    @property
    def sent(self) -> bool:
        return self.sent_at is not None


@dataclass(frozen=True, slots=True)
class RelocationInfo:
    """A relocation as it stood when it was read: its run and its records."""

    run: RunInfo
    owner: str
    creator: str
    organizations: list[str]
    usernames: list[str] | None
    retry_of: str | None
    created_at: datetime
    files: list[FileInfo]
    validation_status: str | None
    validations: list[ValidationAttemptInfo]
    emails: list[EmailInfo]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["run"] = self.run.to_json()
        for email, info in zip(data["emails"], self.emails, strict=True):
            email["sent"] = info.sent
        jsonable: dict[str, Any] = _jsonable(data)
        return jsonable


def relocation_info(engine: Engine, run_id: str) -> RelocationInfo:
    """The relocation of run ``run_id``; ``RunNotFoundError`` if there is no such run."""
    run = engine.get(run_id)
    with engine.db.reads() as session:
        record = session.execute(
            select(Relocation).where(Relocation.run_id == run.id)
        ).scalar_one_or_none()
        if record is None:
            raise InvalidParamsError(
                f"run {run.id} is a {run.workflow!r} run with no relocation; "
                "`statewright relocation show` takes the id of a relocation run"
            )
        status, attempts = _validations(session, record.id)
        return RelocationInfo(
            run=run,
            owner=record.owner_email,
            creator=record.creator_email or record.owner_email,
            organizations=list(record.want_org_slugs),
            usernames=record.want_usernames,
            retry_of=record.retry_of,
            created_at=record.created_at,
            files=_files(session, record.id),
            validation_status=status,
            validations=attempts,
            emails=_emails(session, record.id),
        )


def _files(session: Session, relocation_id: int) -> list[FileInfo]:
    f = RelocationFile
    rows = session.execute(
        select(f.kind, f.size, func.length(f.data), f.sha256, f.created_at)
        .where(f.relocation_id == relocation_id)
        .order_by(f.id)
    ).all()
    return [FileInfo(kind, size, int(stored), sha, at) for kind, size, stored, sha, at in rows]


def _validations(
    session: Session, relocation_id: int
) -> tuple[str | None, list[ValidationAttemptInfo]]:
    validation = session.execute(
        select(RelocationValidation).where(RelocationValidation.relocation_id == relocation_id)
    ).scalar_one_or_none()
    if validation is None:
        return None, []
    attempts = session.execute(
        select(RelocationValidationAttempt)
        .where(RelocationValidationAttempt.validation_id == validation.id)
        .order_by(RelocationValidationAttempt.number)
    ).scalars()
    return validation.status, [
        ValidationAttemptInfo(
            a.number, a.status, list(a.findings or []), a.started_at, a.finished_at
        )
        for a in attempts
    ]


def _emails(session: Session, relocation_id: int) -> list[EmailInfo]:
    e = RelocationEmail
    rows = session.execute(
        select(e.kind, e.recipient, e.subject, e.created_at, e.sent_at)
        .where(e.relocation_id == relocation_id)
        .order_by(e.id)
    ).all()
    return [EmailInfo(*row) for row in rows]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
