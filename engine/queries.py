"""Reading runs and their history as plain, frozen snapshots."""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from statewright.errors import AmbiguousRunIdError, InvalidParamsError, RunNotFoundError
from statewright.jsonvalues import is_run_id
from statewright.models.engine import RUN_STATUSES, OutboxMessage, WorkflowRun, WorkflowTransition

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
            business_key=run.business_key,
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


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs to list; every field left ``None`` matches every run.

    ``text`` is found anywhere in the params' JSON (case-insensitively);
    ``business_key`` is the key the run's workflow declares (``Workflow.business_key``).
    """

    workflow: str | None = None
    status: str | None = None
    state: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    text: str | None = None
    business_key: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in RUN_STATUSES:
            raise InvalidParamsError(
                f"unknown status {self.status!r}; allowed: {', '.join(RUN_STATUSES)}"
            )
        for name in ("started_from", "started_to"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidParamsError(f"{name} {moment.isoformat()!r} has no time zone")
        if self.text is not None and len(self.text) > MAX_TEXT:
            raise InvalidParamsError(f"text is {len(self.text)} characters; at most {MAX_TEXT}")


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs, newest first, and the cursor of the page after it (if any)."""

    runs: list[RunInfo]
    next_cursor: str | None


MAX_TEXT = 200


def search_runs(
    session: Session, filters: RunFilter, *, after: str | None = None, limit: int = 50
) -> RunPage:
    """Runs matching ``filters``, newest first, ``limit`` at a time.

    Pages are keyset pages: ``after`` is the ``next_cursor`` of the previous page, so a
    page costs the same at the millionth run as at the first, and runs started meanwhile
    never shift a page.
    """
    if not 1 <= limit <= 1000:
        raise InvalidParamsError(f"limit {limit} is out of range; allowed: 1 to 1000")
    statement = select(WorkflowRun).where(*_conditions(filters))
    if after is not None:
        created, run_id = decode_cursor(after)
        # a row comparison, so the (created_at, id) index is entered at the cursor
        statement = statement.where(
            tuple_(WorkflowRun.created_at, WorkflowRun.id)
            < tuple_(literal(created, WorkflowRun.created_at.type), literal(run_id, String))
        )
    statement = statement.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
    rows = list(session.execute(statement.limit(limit + 1)).scalars())
    runs = [RunInfo.of(r) for r in rows[:limit]]
    more = len(rows) > limit
    return RunPage(runs, encode_cursor(runs[-1]) if more else None)


def count_by_status(session: Session, filters: RunFilter) -> dict[str, int]:
    """How many runs match ``filters`` (whatever their status), by status."""
    statement = (
        select(WorkflowRun.status, func.count())
        .where(*_conditions(replace(filters, status=None)))
        .group_by(WorkflowRun.status)
    )
    counts = dict.fromkeys(RUN_STATUSES, 0)
    for status, count in session.execute(statement):
        counts[status] = count
    return counts


def _conditions(filters: RunFilter) -> list[ColumnElement[bool]]:
    run = WorkflowRun
    found: list[ColumnElement[bool]] = []
    for column, value in (
        (run.workflow, filters.workflow),
        (run.status, filters.status),
        (run.state, filters.state),
    ):
        if value is not None:
            found.append(column == value)
    if filters.started_from is not None:
        found.append(run.created_at >= filters.started_from)
    if filters.started_to is not None:
        found.append(run.created_at < filters.started_to)
    if filters.text:
        pattern = "%" + _escape_like(filters.text.lower()) + "%"
        found.append(func.lower(cast(run.params, String)).like(pattern, escape="\\"))
    if filters.business_key is not None:
        found.append(run.business_key == filters.business_key)
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(run: RunInfo) -> str:
    """The position just after ``run`` in newest-first order, as an opaque string."""
    raw = f"{run.created_at.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor stands for; a clear error for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, run_id = raw.split("|")
        moment = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidParamsError(
            f"cursor {cursor[:80]!r} is not one this console made; start from the first page"
        ) from None
    if moment.tzinfo is None or not is_run_id(run_id):
        raise InvalidParamsError(
            f"cursor {cursor[:80]!r} is not one this console made; start from the first page"
        )
    return moment, run_id


@dataclass(frozen=True, slots=True)
class RunWait:
    """Where a run's next step stands: claimed by a worker, or owed a message and when."""

    claimed: bool
    lease_expires_at: datetime | None
    state_entered_at: datetime
    #: When the pending message of the run's current token is due (None: none is pending).
    due_at: datetime | None


def run_wait(session: Session, run_id: str) -> RunWait:
    """What the run's next step waits for (see ``RunWait``)."""
    run = session.get(WorkflowRun, run_id) if is_run_id(run_id) else None
    if run is None:
        raise RunNotFoundError(run_id)
    due = session.execute(
        select(func.min(OutboxMessage.not_before)).where(
            OutboxMessage.run_id == run_id, OutboxMessage.token == run.token
        )
    ).scalar_one_or_none()
    return RunWait(run.claimed, run.lease_expires_at, run.state_entered_at, due)


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
