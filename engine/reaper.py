"""The reaper: re-dispatches runs whose lease expired with nothing pending.

A lease covers both waits of a step: a dispatched message waiting for a worker
(the message may have been lost with a broker restart) and a claimed step running
(its worker may have died). Either way the run gets a new token, so the old
message, if it ever arrives, is dropped. The attempt of a claimed step was
already counted when it was claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from statewright.clock import Clock
from statewright.dbtime import judged_now
from statewright.dispatch import MAX_DOUBLINGS
from statewright.metrics import Metrics
from statewright.models.engine import OutboxMessage, WorkflowRun, WorkflowTransition
from statewright.persistence import Database
from statewright.recorder import RunRecorder
from statewright.registry import Registry

log = structlog.get_logger("statewright.reaper")


class Reaper:
    """Finds expired leases and dispatches those steps again."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        recorder: RunRecorder,
        clock: Clock,
        metrics: Metrics,
        *,
        batch: int = 200,
    ) -> None:
        self._db = db
        self._registry = registry
        self._recorder = recorder
        self._clock = clock
        self._metrics = metrics
        self._batch = batch

    def run_once(self, *, only_run: str | None = None) -> int:
        """Re-dispatch one batch of expired runs (``only_run``: that run if expired)."""
        expired = WorkflowRun.lease_expires_at < judged_now(self._clock)
        statement = self._running(only_run).where(expired)
        statement = statement.order_by(WorkflowRun.lease_expires_at).limit(self._batch)
        with self._db.transaction() as session:
            return self._redispatch_all(session, statement, "lease expired")

    def recover_all(self, *, only_run: str | None = None) -> int:
        """Re-dispatch every unclaimed running run with nothing in the outbox (``only_run``:
        that run only).

        Used when an embedded worker starts: its in-memory queue died with the last
        process, so whatever had been published to it is gone.
        """
        statement = self._running(only_run).where(WorkflowRun.claimed.is_(False))
        with self._db.transaction() as session:
            return self._redispatch_all(session, statement, "worker restarted")

    def _running(self, only_run: str | None = None) -> Select[WorkflowRun]:
        """Running runs of the workflows this process knows (others belong to other code)."""
        statement = select(WorkflowRun).where(
            WorkflowRun.status == "running",
            WorkflowRun.workflow.in_(list(self._registry.definitions)),
        )
        if only_run is not None:
            statement = statement.where(WorkflowRun.id == only_run)
        if not self._db.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        return statement

    def _redispatch_all(self, session: Session, statement: Select[WorkflowRun], why: str) -> int:
        runs = session.execute(statement).scalars().all()
        pending = _with_pending_messages(session, runs)
        now = self._clock.now()
        count = 0
        for run in runs:
            if run.id in pending:
                continue  # its message is still in the outbox; the relay will send it
            if _waiting_in_time(self._registry, run, now):
                continue  # a waiting run owes nothing until its timeout is overdue
            if not self._registry.has_step(run.workflow, run.state):
                self._metrics.incr("reaper.unknown_state", tags={"workflow": run.workflow})
                log.warning(
                    "run is in a state this code has no step for; left alone",
                    run=run.id,
                    workflow=run.workflow,
                    state=run.state,
                )
                continue
            self._redispatch(session, run, why)
            count += 1
        return count

    def _redispatch(self, session: Session, run: WorkflowRun, why: str) -> None:
        """A dead worker's step gets a new token; a lost or late message is sent again
        with the same token, so a backlog cannot make a run's messages stale forever.

        Each copy of the same message waits twice as long as the one before for a
        worker (up to ``MAX_DOUBLINGS``): a queue that takes longer than the dispatch
        timeout to drain gets a few copies of each message, not one per timeout.
        """
        now = self._clock.now()
        detail: dict[str, Any] = {"reason": why, "was_claimed": run.claimed}
        copies = 0 if run.claimed else _copies_sent(session, run)
        if not run.claimed:
            detail["copy"] = copies + 1
        self._recorder.history(session, run, "redispatch", run.state, now=now, detail=detail)
        if run.claimed:
            self._recorder.dispatch(session, run, now=now)
        else:
            backoff = 2 ** min(copies + 1, MAX_DOUBLINGS)
            self._recorder.redeliver(session, run, now=now, backoff=backoff)
        self._metrics.incr("reaper.redispatched", tags={"workflow": run.workflow})
        log.warning("step dispatched again", run=run.id, state=run.state, **detail)


def _waiting_in_time(registry: Registry, run: WorkflowRun, now: datetime) -> bool:
    """Whether ``run`` waits for a signal with no timeout timer overdue (a lost timer's
    lease has expired: it is sent again, like a lost step message)."""
    if not registry.has_step(run.workflow, run.state):
        return False
    wait = registry.step(run.workflow, run.state).wait
    return wait is not None and (run.lease_expires_at is None or run.lease_expires_at >= now)


def _copies_sent(session: Session, run: WorkflowRun) -> int:
    """How many times the reaper has sent the run's current message again."""
    return session.execute(
        select(func.count()).where(
            WorkflowTransition.run_id == run.id,
            WorkflowTransition.token == run.token,
            WorkflowTransition.trigger == "redispatch",
        )
    ).scalar_one()


def _with_pending_messages(session: Session, runs: Sequence[WorkflowRun]) -> set[str]:
    """Runs whose current message is still waiting in the outbox."""
    if not runs:
        return set()
    tokens = {run.id: run.token for run in runs}
    rows = session.execute(
        select(OutboxMessage.run_id, OutboxMessage.token).where(
            OutboxMessage.run_id.in_(list(tokens))
        )
    ).all()
    return {run_id for run_id, token in rows if run_id is not None and tokens[run_id] == token}
