"""Starting a relocation: the run, its owning record and the uploaded file, in one transaction.

One owner has at most one active (running or paused) relocation: the workflow's
activation hook (``owners.claim_owner``) refuses a start, or a redrive, past it.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.orm import Session

from statewright import (
    ConfigurationError,
    Engine,
    InvalidParamsError,
    RunInfo,
)
from statewright.models.relocation import Relocation as RelocationRecord
from statewright.models.relocation import RelocationFile
from statewright.workflows.relocation.crypto import is_encrypted
from statewright.workflows.relocation.owners import require_user
from statewright.workflows.relocation.workflow import Relocation

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def start_relocation(
    engine: Engine,
    export: bytes | Path,
    *,
    owner: str,
    creator: str | None = None,
    orgs: list[str] | None = None,
    usernames: list[str] | None = None,
    pause_at: str | None = None,
    idempotency_key: str | None = None,
) -> RunInfo:
    """Start relocating ``export`` (bytes or a file) into this installation.

    ``owner`` is the email of an existing user who will own the imported
    organizations; ``creator`` (default: the owner) is the email of the user starting
    it on the owner's behalf. Both get the started, failed and succeeded emails.
    ``orgs`` limits the relocation to those slugs (default: all). Only up to the size
    limit is stored; a larger file fails the run in uploading. Refused while the owner
    has another relocation running or paused.
    """
    definition = engine.registry.get("relocation")
    workflow = definition.instance
    assert isinstance(workflow, Relocation)
    limit = workflow.config.limits.max_file_bytes
    data, size = _read(export, limit)
    _check_key(workflow, data, embedded=engine.settings.broker_url is None)
    wanted = sorted(set(orgs or []))
    for slug in wanted:
        if not SLUG.match(slug):
            raise InvalidParamsError(
                f"organization slug {slug!r} is not valid; use lowercase letters, digits, - and _"
            )
    creator = creator or owner

    def setup(session: Session, run_id: str) -> None:
        require_user(session, owner, "owner")  # locked and checked for others on activation
        require_user(session, creator, "creator")
        record = RelocationRecord(
            run_id=run_id,
            owner_email=owner,
            creator_email=creator,
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
    if creator != owner:
        params["creator"] = creator
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


def _check_key(workflow: Relocation, data: bytes, *, embedded: bool) -> None:
    """Refuse before starting what would fail in preprocessing: a configured private key
    that cannot be read (or is a public key), or an encrypted export and no key where
    this process is the one that decrypts it (embedded). With a broker, the workers
    decrypt, and a process that only starts relocations need not hold the key."""
    key = workflow.config.private_key
    if key is None and embedded and is_encrypted(data[:16]):
        raise ConfigurationError(
            "the export is encrypted, and this installation has no private key; set "
            "STATEWRIGHT_RELOCATION_PRIVATE_KEY to the private.pem whose public key it was "
            "encrypted to"
        )
