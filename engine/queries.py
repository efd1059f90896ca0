"""Reading runs and their history as plain, frozen snapshots."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engine.errors import AmbiguousRunIdError, InvalidParamsError, RunNotFoundError
from engine.jsonvalues import is_run_id
from models.engine import RUN_STATUSES, WorkflowRun, WorkflowTransition

FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as it stood when it was read."""

    id: str
    workflow: str
    state: str
    status: str
    params: dict[str, Any]
    context: dict[str, Any]
    attempt: int
    polls: int
    token: int
    failure_reason: str | None
    failure_detail: dict[str, Any] | None
    definition_version: str
    idempotency_key: str | None
    business_key: str | None
    pause_at: str | None
    pause_requested: bool
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def of(cls, run: WorkflowRun) -> RunInfo:
        return cls(
            id=run.id,
            workflow=run.workflow,
            state=run.state,
            status=run.status,
            params=dict(run.params),
            context=dict(run.context),
            attempt=run.attempt,
            polls=run.polls,
            token=run.token,
            failure_reason=run.failure_reason,
            failure_detail=dict(run.failure_detail) if run.failure_detail else None,
            definition_version=run.definition_version,
            idempotency_key=run.idempotency_key,
            business_key=run.business_key,
            pause_at=run.pause_at,
            pause_requested=run.pause_requested,
            cancel_requested=run.cancel_requested,
            created_at=run.created_at,
            updated_at=run.updated_at,
            finished_at=run.finished_at,
        )

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class TransitionInfo:
    """One history row."""

    seq: int
    from_state: str | None
    trigger: str
    to_state: str
    attempt: int
    token: int
    at: datetime
    duration_ms: float | None
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, row: WorkflowTransition) -> TransitionInfo:
        return cls(
            row.seq,
            row.from_state,
            row.trigger,
            row.to_state,
            row.attempt,
            row.token,
            row.at,
            row.duration_ms,
            dict(row.detail) if row.detail else None,
        )

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def get_run(session: Session, run_id: str) -> RunInfo:
    run = session.get(WorkflowRun, run_id) if is_run_id(run_id) else None
    if run is None:
        raise RunNotFoundError(run_id)
    return RunInfo.of(run)


def list_runs(
    session: Session,
    *,
    workflow: str | None,
    status: str | None,
    limit: int,
    key: str | None = None,
    after: str | None = None,
) -> list[RunInfo]:
    """Runs newest first (ties by id); ``after`` a run id: the page that follows it."""
    if status is not None and status not in RUN_STATUSES:
        raise InvalidParamsError(f"unknown status {status!r}; allowed: {', '.join(RUN_STATUSES)}")
    if not 1 <= limit <= 10_000:
        raise InvalidParamsError(f"limit {limit} is out of range; allowed: 1 to 10000")
    statement = select(WorkflowRun).order_by(WorkflowRun.created_at.desc(), WorkflowRun.id)
    if workflow is not None:
        statement = statement.where(WorkflowRun.workflow == workflow)
    if status is not None:
        statement = statement.where(WorkflowRun.status == status)
    if key is not None:
        statement = statement.where(WorkflowRun.business_key == key)
    if after is not None:
        since = get_run(session, after).created_at
        statement = statement.where(
            or_(
                WorkflowRun.created_at < since,
                and_(WorkflowRun.created_at == since, WorkflowRun.id > after),
            )
        )
    return [RunInfo.of(r) for r in session.execute(statement.limit(limit)).scalars()]


#: The shortest prefix of a run id that is looked up (as with git's abbreviated hashes).
MIN_PREFIX = 4
#: How many matches an ambiguous prefix lists.
SHOWN_MATCHES = 10


def resolve_run_id(session: Session, text: str) -> str:
    """The whole id of the one run whose id is ``text`` or starts with it.

    Refuses an unknown id or prefix (naming it), one shorter than ``MIN_PREFIX``, and
    a prefix several runs share (listing them). Ids are lowercase hex, so a prefix
    is a range of the primary key: ``prefix <= id < prefix + "g"``.
    """
    value = text.strip().lower()
    if is_run_id(value):
        get_run(session, value)
        return value
    if not value or len(value) >= 32 or any(c not in "0123456789abcdef" for c in value):
        raise RunNotFoundError(text)
    if len(value) < MIN_PREFIX:
        raise InvalidParamsError(
            f"run id prefix {text!r} is too short; give at least {MIN_PREFIX} characters"
        )
    found = list(
        session.execute(
            select(WorkflowRun.id)
            .where(WorkflowRun.id >= value, WorkflowRun.id < value + "g")
            .order_by(WorkflowRun.id)
            .limit(SHOWN_MATCHES + 1)
        ).scalars()
    )
    if not found:
        raise RunNotFoundError(text)
    if len(found) > 1:
        raise AmbiguousRunIdError(text, found[:SHOWN_MATCHES], more=len(found) > SHOWN_MATCHES)
    return found[0]


def run_history(session: Session, run_id: str) -> list[TransitionInfo]:
    get_run(session, run_id)
    rows = session.execute(
        select(WorkflowTransition)
        .where(WorkflowTransition.run_id == run_id)
        .order_by(WorkflowTransition.seq)
    ).scalars()
    return [TransitionInfo.of(r) for r in rows]


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
