"""Reading runs and their history as plain, frozen snapshots."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InvalidParamsError, RunNotFoundError
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
    pause_at: str | None
    pause_requested: bool
    cancel_requested: bool
    cancel_at: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    #: When the whole run must be done by, if it has a deadline.
    deadline_at: datetime | None = None
    #: Signals sent while it was paused, delivered when it resumes.
    kept_signals: tuple[dict[str, Any], ...] = ()

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
            pause_at=run.pause_at,
            pause_requested=run.pause_requested,
            cancel_requested=run.cancel_requested,
            cancel_at=run.cancel_at,
            created_at=run.created_at,
            updated_at=run.updated_at,
            finished_at=run.finished_at,
            deadline_at=run.deadline_at,
            kept_signals=tuple(run.kept_signals or ()),
        )

    def to_json(self) -> dict[str, Any]:
        values = _jsonable(asdict(self))
        values["kept_signals"] = list(self.kept_signals)
        return values


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

    @property
    def polls(self) -> int:
        """How many polls this row stands for (polls in a row fold into one row)."""
        if self.trigger != "poll":
            return 0
        return int((self.detail or {}).get("polls", 1))

    @property
    def first_at(self) -> datetime:
        """When the first of the row's folded polls happened (``at`` is the last's)."""
        first = (self.detail or {}).get("first_at") if self.trigger == "poll" else None
        return datetime.fromisoformat(first) if isinstance(first, str) else self.at

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def get_run(session: Session, run_id: str) -> RunInfo:
    run = session.get(WorkflowRun, run_id) if is_run_id(run_id) else None
    if run is None:
        raise RunNotFoundError(run_id)
    return RunInfo.of(run)


def list_runs(
    session: Session, *, workflow: str | None, status: str | None, limit: int
) -> list[RunInfo]:
    if status is not None and status not in RUN_STATUSES:
        raise InvalidParamsError(f"unknown status {status!r}; allowed: {', '.join(RUN_STATUSES)}")
    if not 1 <= limit <= 10_000:
        raise InvalidParamsError(f"limit {limit} is out of range; allowed: 1 to 10000")
    statement = select(WorkflowRun).order_by(WorkflowRun.created_at.desc(), WorkflowRun.id)
    if workflow is not None:
        statement = statement.where(WorkflowRun.workflow == workflow)
    if status is not None:
        statement = statement.where(WorkflowRun.status == status)
    return [RunInfo.of(r) for r in session.execute(statement.limit(limit)).scalars()]


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
