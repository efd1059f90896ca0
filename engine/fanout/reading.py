"""Reading a run's Maps: their counters, their failed items, and the Map step that
judges the outcome once every item has finished."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from statewright.errors import PermanentError
from statewright.joins import Map
from statewright.models.children import WorkflowChild, WorkflowMap

if TYPE_CHECKING:
    from statewright.context import StepContext

#: Failed items the Map step's failure reason quotes.
QUOTED_FAILURES = 3


@dataclass(frozen=True, slots=True)
class MapInfo:
    """One visit of a run to a Map state, as it stands."""

    state: str
    visit: int
    concurrency: int
    started: int
    done: int
    failed: int
    exhausted: bool
    finished_at: datetime | None
    #: Failed items a redrive queued to run again, not started yet.
    queued: int = 0

    @property
    def in_flight(self) -> int:
        return self.started - self.done

    @property
    def complete(self) -> bool:
        return self.exhausted and self.done == self.started and not self.queued

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "visit": self.visit,
            "concurrency": self.concurrency,
            "started": self.started,
            "done": self.done,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "exhausted": self.exhausted,
            "queued": self.queued,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    @classmethod
    def of(cls, row: WorkflowMap) -> MapInfo:
        return cls(
            row.state,
            row.visit,
            row.concurrency,
            row.started,
            row.done,
            row.failed,
            row.exhausted,
            row.finished_at,
            row.next_offset - row.started,
        )


def has_more(row: WorkflowMap) -> bool:
    """Whether the Map has items to start: its source has more, or a redrive queued
    failed items to run again (``started`` then trails ``next_offset`` by as many)."""
    return not row.exhausted or row.started < row.next_offset


def complete(row: WorkflowMap) -> bool:
    """Whether every item of the Map has been started and has finished."""
    return row.exhausted and row.done == row.started == row.next_offset


@dataclass(frozen=True, slots=True)
class FailedItem:
    """A Map item that failed, and why."""

    position: int
    key: str
    run_id: str | None
    item: Any
    reason: str | None
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "run_id": self.run_id,
            "item": self.item,
            "reason": self.reason,
            "attempts": self.attempts,
        }


def maps_of(session: Session, run_id: str) -> list[MapInfo]:
    """The run's Maps, one per visit to a Map state, oldest first."""
    rows = session.execute(
        select(WorkflowMap).where(WorkflowMap.parent_run_id == run_id).order_by(WorkflowMap.visit)
    ).scalars()
    return [MapInfo.of(row) for row in rows]


def failed_items(
    session: Session, run_id: str, *, after: int = -1, limit: int = 100, visit: int | None = None
) -> list[FailedItem]:
    """The run's failed Map items with their reasons, by position, from ``after`` on
    (of its latest Map, or of the visit given)."""
    if visit is None:
        visit = session.execute(
            select(func.max(WorkflowMap.visit)).where(WorkflowMap.parent_run_id == run_id)
        ).scalar()
        if visit is None:
            return []
    map_id = session.execute(
        select(WorkflowMap.id).where(
            WorkflowMap.parent_run_id == run_id, WorkflowMap.visit == visit
        )
    ).scalar()
    child = WorkflowChild
    rows = session.execute(
        select(child)
        .where(child.map_id == map_id, child.status.in_(("failed", "cancelled")))
        .where(child.position > after)
        .order_by(child.position)
        .limit(limit)
    ).scalars()
    return [
        FailedItem(r.position or 0, r.key, r.child_run_id, r.item, r.reason, r.attempts)
        for r in rows
    ]


def map_outcome(ctx: StepContext, spec: Map) -> str:
    """The Map step: every item has finished; within the tolerance take ``on_done``,
    past it ``on_failed``, or fail the run naming the first failed items."""
    row = ctx.session.execute(
        select(WorkflowMap)
        .where(WorkflowMap.parent_run_id == ctx.run_id, WorkflowMap.state == ctx.state)
        .order_by(WorkflowMap.visit.desc())
        .limit(1)
    ).scalar_one()
    summary = {"items": row.started, "failed": row.failed}
    ctx.context.setdefault("maps", {})[ctx.state] = summary
    if spec.tolerance.allows(row.failed, row.started):
        return spec.on_done
    if spec.on_failed is not None:
        return spec.on_failed
    quoted = failed_items(ctx.session, ctx.run_id, visit=row.visit, limit=QUOTED_FAILURES)
    examples = "; ".join(f"item {f.position}: {f.reason}" for f in quoted)
    raise PermanentError(
        f"{row.failed} of {row.started} items of {ctx.state!r} failed, past the tolerance "
        f"({spec.tolerance.describe()}); first: {examples}"
    )
