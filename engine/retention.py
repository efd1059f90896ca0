"""Retention: finished runs and their history deleted by age, a small batch at a time.

A run is purged only when it has finished (succeeded, failed or cancelled) before the
cutoff; running and paused runs are never touched. Each batch is its own short
transaction that locks the runs it deletes and skips those another transaction holds
(``SKIP LOCKED`` on PostgreSQL: a redrive in progress, or another purge), deletes
their history rows, then the runs; owning records declared with ``ON DELETE
CASCADE`` (a relocation's rows, say) go with them. Running steps never wait on a
purge, and a purge interrupted at any point leaves whole runs, never half of one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, CursorResult, Delete, Row, and_, delete, func, select
from sqlalchemy.orm import Session

from statewright.clock import Clock
from statewright.dbtime import now_in
from statewright.errors import InvalidParamsError
from statewright.metrics import Metrics
from statewright.models.engine import WorkflowRun, WorkflowTransition
from statewright.persistence import Database
from statewright.queries import FINISHED

log = structlog.get_logger("statewright.retention")

DEFAULT_BATCH = 500
MAX_BATCH = 10_000
#: History rows one batch deletes at most (a batch always takes at least one run), so a
#: few runs with very long histories still make a short transaction.
HISTORY_PER_BATCH = 20_000
#: How often the relay looks for runs past the engine's retention, once none are left.
CHECK_EVERY = 600.0


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge deleted (or, with ``dry_run``, would delete)."""

    runs: int
    history: int
    batches: int
    cutoff: datetime
    dry_run: bool = False


class Retention:
    """Deletes finished runs older than a cutoff, in batches.

    ``clock`` of ``None`` takes the cutoff from the database's clock. ``keep`` is the
    engine's retention setting, applied by ``run_if_due`` on every relay round.
    """

    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        clock: Clock | None,
        *,
        keep: timedelta | None = None,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._clock = clock
        self.keep = keep
        self._next_check = 0.0

    def purge(
        self,
        older_than: timedelta,
        *,
        batch: int = DEFAULT_BATCH,
        workflow: str | None = None,
        dry_run: bool = False,
    ) -> PurgeResult:
        """Delete every run that finished more than ``older_than`` ago, with its history."""
        _check(older_than, batch)
        with self._db.reads() as session:
            cutoff = now_in(session, self._clock) - older_than
            if dry_run:
                runs, history = _count(session, _purgeable(cutoff, workflow))
                return PurgeResult(runs, history, 0, cutoff, dry_run=True)
        runs = history = batches = 0
        while True:
            deleted, rows = self.purge_batch(cutoff, batch=batch, workflow=workflow)
            if not deleted:
                break
            runs, history, batches = runs + deleted, history + rows, batches + 1
        if runs:
            log.info("purged finished runs", runs=runs, history=history, cutoff=str(cutoff))
        return PurgeResult(runs, history, batches, cutoff)

    def purge_batch(
        self, cutoff: datetime, *, batch: int = DEFAULT_BATCH, workflow: str | None = None
    ) -> tuple[int, int]:
        """One short transaction: delete up to ``batch`` runs finished before ``cutoff``
        that no other transaction holds, and their history; returns both counts."""
        statement = (
            select(WorkflowRun.id, WorkflowRun.history_len)
            .where(_purgeable(cutoff, workflow))
            .order_by(WorkflowRun.finished_at, WorkflowRun.id)
            .limit(batch)
        )
        if not self._db.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        with self._db.transaction() as session:
            ids = _within_budget(session.execute(statement).all())
            if not ids:
                return 0, 0
            history = _deleted(
                session, delete(WorkflowTransition).where(WorkflowTransition.run_id.in_(ids))
            )
            runs = _deleted(
                session, delete(WorkflowRun).where(WorkflowRun.id.in_(ids), _finished())
            )
        self._metrics.incr("retention.purged_runs", runs)
        self._metrics.incr("retention.purged_history", history)
        return runs, history

    def run_if_due(self) -> int:
        """Apply the engine's retention: one batch per call while runs are past it, then
        a look every ``CHECK_EVERY`` seconds; returns the runs deleted."""
        if self.keep is None or time.monotonic() < self._next_check:
            return 0
        with self._db.reads() as session:
            cutoff = now_in(session, self._clock) - self.keep
        runs, _ = self.purge_batch(cutoff)
        if runs < DEFAULT_BATCH:
            self._next_check = time.monotonic() + CHECK_EVERY
        return runs


def _finished() -> ColumnElement[bool]:
    return WorkflowRun.status.in_(sorted(FINISHED))


def _purgeable(cutoff: datetime, workflow: str | None) -> ColumnElement[bool]:
    condition = and_(_finished(), WorkflowRun.finished_at < cutoff)
    if workflow is not None:
        condition = and_(condition, WorkflowRun.workflow == workflow)
    return condition


def _deleted(session: Session, statement: Delete) -> int:
    """Run a bulk delete; returns how many rows it removed."""
    result = session.execute(statement, execution_options={"synchronize_session": False})
    assert isinstance(result, CursorResult)
    return result.rowcount


def _within_budget(rows: Sequence[Row[str, int]]) -> list[str]:
    """The first runs whose histories together fit ``HISTORY_PER_BATCH`` (at least one)."""
    ids: list[str] = []
    total = 0
    for run_id, history_len in rows:
        total += history_len
        if ids and total > HISTORY_PER_BATCH:
            break
        ids.append(run_id)
    return ids


def _count(session: Session, condition: ColumnElement[bool]) -> tuple[int, int]:
    purgeable = select(WorkflowRun.id).where(condition)
    runs = session.execute(select(func.count()).select_from(purgeable.subquery())).scalar_one()
    history = session.execute(
        select(func.count()).where(WorkflowTransition.run_id.in_(purgeable))
    ).scalar_one()
    return int(runs), int(history)


def _check(older_than: timedelta, batch: int) -> None:
    if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
        raise InvalidParamsError(
            f"older_than {older_than!r} is not a positive age (a timedelta such as 30 days)"
        )
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InvalidParamsError(
            f"batch {batch!r} is not allowed; use a whole number of runs from 1 to {MAX_BATCH}"
        )
