"""Schedules as rows: each holds its next fire time, and whichever relay claims it fires it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from statewright.models.base import Base, JSONType, UTCDateTime


class WorkflowSchedule(Base):
    """A cron schedule that starts runs of one workflow.

    Declared schedules (from a workflow's ``schedules``) are named
    ``<workflow>.<name>`` and kept in step with the code; an operator's have no dot.
    """

    __tablename__ = "workflow_schedules"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(100))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: What becomes of fire times missed while no relay ran: 'skip' or 'catch_up'.
    missed: Mapped[str] = mapped_column(String(16))
    catch_up_limit: Mapped[int] = mapped_column(Integer)
    declared: Mapped[bool] = mapped_column(Boolean)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The fire time this schedule is due at next (UTC).
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("missed IN ('skip', 'catch_up')", name="missed"),
        # relays: due schedules, earliest first
        Index(
            "ix_workflow_schedules_due",
            "next_fire_at",
            postgresql_where=text("NOT paused"),
            sqlite_where=text("NOT paused"),
        ),
    )
