"""The reaper: re-dispatches runs whose lease expired with nothing pending.

A lease covers both waits of a step: a dispatched message waiting for a worker
(the message may have been lost with a broker restart) and a claimed step running
(its worker may have died). Either way the run gets a new token, so the old
message, if it ever arrives, is dropped. The attempt of a claimed step was
already counted when it was claimed.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.metrics import Metrics
from engine.persistence import Database
from engine.recorder import RunRecorder
from models.engine import OutboxMessage, WorkflowRun

log = structlog.get_logger("statewright.reaper")


class Reaper:
    """Finds expired leases and dispatches those steps again."""

    def __init__(
        self,
        db: Database,
        recorder: RunRecorder,
        clock: Clock,
        metrics: Metrics,
        *,
        batch: int = 200,
    ) -> None:
        self._db = db
        self._recorder = recorder
        self._clock = clock
        self._metrics = metrics
        self._batch = batch

    def run_once(self) -> int:
        """Re-dispatch one batch of expired runs; returns how many."""
        now = self._clock.now()
        statement = (
            select(WorkflowRun)
            .where(WorkflowRun.status == "running", WorkflowRun.lease_expires_at < now)
            .order_by(WorkflowRun.lease_expires_at)
            .limit(self._batch)
        )
        if not self._db.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        with self._db.transaction() as session:
            runs = session.execute(statement).scalars().all()
            pending = _with_pending_messages(session, [r.id for r in runs])
            count = 0
            for run in runs:
                if run.id in pending:
                    continue  # its message is still in the outbox; the relay will send it
                self._redispatch(session, run, "lease expired")
                count += 1
        return count

    def recover_all(self) -> int:
        """Re-dispatch every unclaimed running run with nothing in the outbox.

        Used when an embedded worker starts: its in-memory queue died with the last
        process, so whatever had been published to it is gone.
        """
        with self._db.transaction() as session:
            runs = (
                session.execute(
                    select(WorkflowRun).where(
                        WorkflowRun.status == "running", WorkflowRun.claimed.is_(False)
                    )
                )
                .scalars()
                .all()
            )
            pending = _with_pending_messages(session, [r.id for r in runs])
            lost = [run for run in runs if run.id not in pending]
            for run in lost:
                self._redispatch(session, run, "worker restarted")
        return len(lost)

    def _redispatch(self, session: Session, run: WorkflowRun, why: str) -> None:
        now = self._clock.now()
        detail = {"reason": why, "was_claimed": run.claimed}
        self._recorder.history(session, run, "redispatch", run.state, now=now, detail=detail)
        self._recorder.dispatch(session, run, now=now)
        self._metrics.incr("reaper.redispatched", tags={"workflow": run.workflow})
        log.warning("step dispatched again", run=run.id, state=run.state, **detail)


def _with_pending_messages(session: Session, run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    rows = session.execute(
        select(OutboxMessage.run_id).where(OutboxMessage.run_id.in_(run_ids))
    ).scalars()
    return {r for r in rows if r is not None}
