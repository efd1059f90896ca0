"""Relocation's own records: the request, its files and its validations.

Status lives in the run (``workflow_runs``); these tables hold what the run
works on and what it found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from statewright.models.base import Base, BigId, JSONType, UTCDateTime


class Relocation(Base):
    """One request to move organizations into this installation; owned by one run."""

    __tablename__ = "relocations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("workflow_runs.id", ondelete="CASCADE"), unique=True
    )
    #: Who will own the imported organizations; one active relocation per owner.
    owner_email: Mapped[str] = mapped_column(String(254), index=True)
    #: Who started the relocation (an administrator on the owner's behalf, or the owner).
    #: Nullable only so the column could be added to existing rows, which the migration
    #: fills with their owner; every start writes it.
    creator_email: Mapped[str | None] = mapped_column(String(254))
    #: The failed run this relocation retries, reusing its stored export.
    retry_of: Mapped[str | None] = mapped_column(String(32))
    want_org_slugs: Mapped[list[str]] = mapped_column(JSONType)
    want_usernames: Mapped[list[str] | None] = mapped_column(JSONType)
    latest_notified: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RelocationFile(Base):
    """A file of a relocation: the upload as received, or its checked, normalized form."""

    __tablename__ = "relocation_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    relocation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("relocations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(20))
    #: Size of the file as the sender had it (what is stored is cut at the size limit).
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("relocation_id", "kind"),)


class RelocationValidation(Base):
    """Validation of a relocation in a sandbox: one row, several attempts."""

    __tablename__ = "relocation_validations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    relocation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("relocations.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RelocationValidationAttempt(Base):
    """One sandbox import: pending, then valid, invalid (with findings) or timed out."""

    __tablename__ = "relocation_validation_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    validation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("relocation_validations.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    findings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    detail: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("validation_id", "number"),)


class RelocationEmail(Base):
    """An email of a relocation: written once (the unique key), sent by a task after commit.

    ``sent_at`` stays empty until the mail server has accepted it; an email the server
    refuses for good (or that fails ``MAX_EMAIL_ATTEMPTS`` times) gets ``undeliverable_at``
    and the server's reason instead, so it never holds up the others.
    """

    __tablename__ = "relocation_emails"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    relocation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("relocations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    undeliverable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undeliverable_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("relocation_id", "kind", "recipient"),)
