"""The engine's tables: runs, their transition history, and the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from statewright.models.base import Base, BigId, JSONType, UTCDateTime

RUN_STATUSES = ("running", "paused", "succeeded", "failed", "cancelled")


class WorkflowRun(Base):
    """One execution of a workflow. The single place its status lives."""

    __tablename__ = "workflow_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(100))
    definition_version: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: Attempts of the current state so far (incremented when a step is claimed).
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    #: Fencing token: bumped by every dispatch; a message carrying an older one is stale.
    token: Mapped[int] = mapped_column(Integer, default=0)
    #: Whether the step for the current token has been claimed by a worker.
    claimed: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Random value written by a move that claimed its run's next step in process: the
    #: worker that made the move recognises its claim by it (another writer's never has it).
    claim_marker: Mapped[int | None] = mapped_column(BigInteger)
    state_entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: History position of the transition that entered the current state.
    entry_seq: Mapped[int] = mapped_column(Integer, default=0)
    history_len: Mapped[int] = mapped_column(Integer, default=0)
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_at: Mapped[str | None] = mapped_column(String(100))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A state ahead at which the run is cancelled when its step would be claimed.
    cancel_at: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    #: When the whole run must be done by (its deadline timer fires then), if ever.
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Signals sent while the run was paused, in order, delivered when it resumes.
    kept_signals: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    #: What the run is about, as its workflow declares it (a loan number, an org slug).
    business_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'paused', 'succeeded', 'failed', 'cancelled')",
            name="status",
        ),
        UniqueConstraint("workflow", "idempotency_key"),
        # reaper: running runs by lease expiry
        Index(
            "ix_workflow_runs_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # list: newest first, by workflow and status
        Index("ix_workflow_runs_workflow_status_created", "workflow", "status", "created_at"),
        Index("ix_workflow_runs_status_created", "status", "created_at"),
        # retention: finished runs by age
        Index(
            "ix_workflow_runs_finished",
            "finished_at",
            postgresql_where=text("finished_at IS NOT NULL"),
            sqlite_where=text("finished_at IS NOT NULL"),
        ),
        # console: every run, newest first, in keyset pages
        Index("ix_workflow_runs_created_at_id", "created_at", "id"),
        # list --key: the runs about one business object
        Index("ix_workflow_runs_business_key", "business_key", "created_at"),
    )


class WorkflowTransition(Base):
    """One row per transition, retry, poll, pause, resume or failure of a run."""

    __tablename__ = "workflow_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("workflow_runs.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str | None] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(100))
    to_state: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    token: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (UniqueConstraint("run_id", "seq"),)


class OutboxMessage(Base):
    """A task message written in the transaction that emits it, sent after commit.

    A step's row (one with a ``token``) is deleted once the broker has it: its run's
    lease covers the message from then on. A plain task's row (no ``token``) is its
    lease: it stays until the task finishes or gives up, and is sent again when its
    ``not_before`` passes (a dispatch timeout, a retry's time, or a worker's lease).
    """

    __tablename__ = "workflow_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(200))
    args: Mapped[list[Any]] = mapped_column(JSONType)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    queue: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(32))
    #: The run's fencing token this message carries (a row for an older token is stale).
    token: Mapped[int | None] = mapped_column(Integer)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: A plain task's deliveries taken by a worker so far (its attempts).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Times the current attempt's message was published without a worker taking it.
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Whether a worker holds the current attempt (``not_before`` is then its lease).
    claimed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        # relay: rows whose time has come, oldest first
        Index("ix_workflow_outbox_due", "not_before"),
        Index("ix_workflow_outbox_run_id", "run_id"),
        # ids are never reused, so a late delete cannot remove a newer row
        {"sqlite_autoincrement": True},
    )
