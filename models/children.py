"""Child runs and Map items: who started what, and the counters their joins are made of."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from statewright.models.base import Base, BigId, JSONType, UTCDateTime

#: What a child (or a Map item) can be: started and not finished, finished one way, or
#: (a Map item) failed and queued by a redrive to run again.
CHILD_STATUSES = ("running", "succeeded", "failed", "cancelled", "queued")


class WorkflowChild(Base):
    """A child run started by a parent's step, or one item of a Map (a child run or a
    task). Written in the transaction that starts it; its final status is written in
    the transaction that finishes it, together with its join's counter."""

    __tablename__ = "workflow_children"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    parent_run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("workflow_runs.id", ondelete="CASCADE")
    )
    #: The parent's state that started it, and the history position that entered it.
    parent_state: Mapped[str] = mapped_column(String(100))
    visit: Mapped[int] = mapped_column(Integer)
    #: The key the step gave (stable across its attempts), or a Map item's position.
    key: Mapped[str] = mapped_column(String(200))
    map_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("workflow_maps.id", ondelete="CASCADE")
    )
    position: Mapped[int | None] = mapped_column(BigInteger)
    #: The child run (``None`` for a Map item run as a task).
    child_run_id: Mapped[str | None] = mapped_column(String(32))
    #: The child's workflow, or the Map item's task.
    workflow: Mapped[str] = mapped_column(String(200))
    item: Mapped[Any] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("parent_run_id", "visit", "key"),
        Index("ix_workflow_children_child_run_id", "child_run_id"),
        Index("ix_workflow_children_map_status", "map_id", "status", "position"),
        {"sqlite_autoincrement": True},
    )


class WorkflowMap(Base):
    """One visit of a run to a Map state: where its item source is, and its counters.

    ``started - done`` items are in flight (never more than ``concurrency``); the item
    whose completing transaction makes ``done == started`` with the source ``exhausted``
    is the last, and dispatches the parent's Map step in that transaction. After a
    redrive, ``started`` trails ``next_offset`` by the failed items queued to run again
    (``statewright.fanout.redrive``); the Map is complete only once they have run too."""

    __tablename__ = "workflow_maps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    parent_run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("workflow_runs.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(100))
    visit: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    #: How many items the source has given so far (the next page starts there).
    next_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    started: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The last item of the last page the source gave (a keyset source goes on after it).
    last_item: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: The queue of the Map's fill and item tasks: its state's (silo and all).
    queue: Mapped[str] = mapped_column(String(200))
    #: The source gave a short page: every item has been started.
    exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A fill task is owed (one at a time): it starts the next items up to the bound.
    filling: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("parent_run_id", "visit"),
        {"sqlite_autoincrement": True},
    )
