"""Starting a relocation: the run, its owning record and the uploaded file, in one transaction."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api import Engine
from engine.errors import ConfigurationError, InvalidParamsError
from engine.queries import RunInfo
from models.domain import User
from models.relocation import Relocation as RelocationRecord
from models.relocation import RelocationFile
from workflows.relocation.crypto import is_encrypted
from workflows.relocation.workflow import Relocation

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def start_relocation(
    engine: Engine,
    export: bytes | Path,
    *,
    owner: str,
    orgs: list[str] | None = None,
    usernames: list[str] | None = None,
    pause_at: str | None = None,
    idempotency_key: str | None = None,
) -> RunInfo:
    """Start relocating ``export`` (bytes or a file) into this installation.

    ``owner`` is the email of an existing user who will own the imported
    organizations; ``orgs`` limits the relocation to those slugs (default: all).
    Only up to the size limit is stored; a larger file fails the run in uploading.
    """
    definition = engine.registry.get("relocation")
    workflow = definition.instance
    assert isinstance(workflow, Relocation)
    limit = workflow.config.limits.max_file_bytes
    data, size = _read(export, limit)
    _check_key(workflow, data)
    wanted = sorted(set(orgs or []))
    for slug in wanted:
        if not SLUG.match(slug):
            raise InvalidParamsError(
                f"organization slug {slug!r} is not valid; use lowercase letters, digits, - and _"
            )
    with engine.db.sessions() as session:
        _require_owner(session, owner)

    def setup(session: Session, run_id: str) -> None:
        record = RelocationRecord(
            run_id=run_id,
            owner_email=owner,
            want_org_slugs=wanted,
            want_usernames=usernames,
            created_at=engine.clock.now(),
        )
        session.add(record)
        session.flush()
        session.add(
            RelocationFile(
                relocation_id=record.id,
                kind="upload",
                size=size,
                data=data,
                created_at=engine.clock.now(),
            )
        )

    params = {"owner": owner, "orgs": wanted, "bytes": size}
    return engine.start(
        "relocation", params, idempotency_key=idempotency_key, pause_at=pause_at, setup=setup
    )


def _read(export: bytes | Path, limit: int) -> tuple[bytes, int]:
    if isinstance(export, bytes):
        return export[: limit + 1], len(export)
    try:
        size = export.stat().st_size
        with export.open("rb") as handle:
            return handle.read(limit + 1), size
    except OSError as error:
        raise InvalidParamsError(
            f"cannot read export file {str(export)!r}: {error.strerror}"
        ) from None


def _check_key(workflow: Relocation, data: bytes) -> None:
    """Refuse before starting what would fail in preprocessing: a configured private key
    that cannot be read (or is a public key), or an encrypted export and no key."""
    key = workflow.config.private_key
    if key is None and is_encrypted(data[:16]):
        raise ConfigurationError(
            "the export is encrypted, and this installation has no private key; set "
            "STATEWRIGHT_RELOCATION_PRIVATE_KEY to the private.pem whose public key it was "
            "encrypted to"
        )


def _require_owner(session: Session, email: str) -> None:
    if session.execute(select(User.id).where(User.email == email)).first() is None:
        raise InvalidParamsError(
            f"no user with email {email!r} exists in this installation; the owner of a "
            "relocation must have an account here"
        )
