"""Retrying a failed relocation: a new run that reuses the export the failed one stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.orm import Session

from statewright import Engine, IllegalOperationError, InvalidParamsError, RunInfo, lifecycle
from statewright.models.relocation import Relocation as RelocationRecord
from statewright.models.relocation import RelocationFile
from statewright.persistence import require_run
from statewright.workflows.relocation.owners import require_user


def retry_relocation(
    engine: Engine,
    run_id: str,
    *,
    creator: str | None = None,
    pause_at: str | None = None,
    idempotency_key: str | None = None,
) -> RunInfo:
    """Start a new relocation from the export stored by failed run ``run_id``.

    The new run relocates the same organizations and usernames for the same owner;
    ``creator`` (default: the failed run's creator) is who asks for the retry. Refused
    when ``run_id`` is not a failed relocation, when its stored export is gone or was
    cut at the size limit, when its owner no longer has an account here, or when the
    owner has another relocation active.
    """
    source = engine.get(run_id)
    if source.workflow != "relocation":
        raise InvalidParamsError(
            f"run {run_id} is a {source.workflow!r} run, not a relocation; only a failed "
            "relocation can be retried"
        )
    _require_failed(source.id, source.status)
    with engine.db.reads() as session:
        record = _record(session, run_id)
        owner = record.owner_email
        creator = creator or record.creator_email or owner
        params: dict[str, Any] = {
            "owner": owner,
            "orgs": list(record.want_org_slugs),
            "bytes": _stored_upload(session, record)[0],
            "retry_of": run_id,
        }
    if creator != owner:
        params["creator"] = creator

    def setup(session: Session, new_run_id: str) -> None:
        _require_failed(run_id, require_run(session, run_id).status)  # locked until commit
        source_record = _record(session, run_id)
        _stored_upload(session, source_record)
        require_user(session, owner, "owner")  # locked and checked for others on activation
        require_user(session, creator, "creator")
        copy = RelocationRecord(
            run_id=new_run_id,
            owner_email=owner,
            creator_email=creator,
            want_org_slugs=list(source_record.want_org_slugs),
            want_usernames=source_record.want_usernames,
            retry_of=run_id,
            created_at=engine.clock.now(),
        )
        session.add(copy)
        session.flush()
        _copy_upload(session, source_record.id, copy.id, engine)

    return engine.start(
        "relocation", params, idempotency_key=idempotency_key, pause_at=pause_at, setup=setup
    )


def _require_failed(run_id: str, status: str) -> None:
    """A relocation is retried where its run could be redriven: once it has failed."""
    if not lifecycle.allowed(lifecycle.Redrive, status):
        hint = "; resume it instead" if lifecycle.allowed(lifecycle.Resume, status) else ""
        only = " or ".join(lifecycle.Redrive.allowed)
        raise IllegalOperationError(
            f"run {run_id} is {status}; only a {only} relocation can be retried{hint}"
        )


def _record(session: Session, run_id: str) -> RelocationRecord:
    record = session.execute(
        select(RelocationRecord).where(RelocationRecord.run_id == run_id)
    ).scalar_one_or_none()
    if record is None:
        raise IllegalOperationError(f"run {run_id} has no relocation record to retry from")
    return record


def _stored_upload(session: Session, record: RelocationRecord) -> tuple[int, int]:
    """The stored export's size as sent and as kept; refused when it is gone or was cut."""
    found = session.execute(
        select(RelocationFile.size, func.length(RelocationFile.data)).where(
            RelocationFile.relocation_id == record.id, RelocationFile.kind == "upload"
        )
    ).first()
    if found is None:
        raise IllegalOperationError(
            f"the export of run {record.run_id} is gone (no upload file is stored); "
            "start a new relocation with the export file"
        )
    size, kept = int(found[0]), int(found[1])
    if kept < size:
        raise IllegalOperationError(
            f"the export of run {record.run_id} was not stored whole ({kept:,} of {size:,} "
            "bytes were kept, the size limit); start a new relocation with the export file"
        )
    return size, kept


def _copy_upload(session: Session, source_id: int, target_id: int, engine: Engine) -> None:
    """The stored export, copied inside the database (its bytes never load here)."""
    file = RelocationFile
    session.execute(
        insert(file).from_select(
            ["relocation_id", "kind", "size", "data", "created_at"],
            select(
                literal(target_id, file.relocation_id.type),
                file.kind,
                file.size,
                file.data,
                literal(engine.clock.now(), file.created_at.type),
            ).where(file.relocation_id == source_id, file.kind == "upload"),
        )
    )
