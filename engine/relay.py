"""The outbox relay: sends messages that were committed but never sent, and due timers."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, func, select

from statewright.clock import Clock
from statewright.dbtime import judged_now
from statewright.dispatch import Dispatcher, TaskMessage, resend_wait
from statewright.metrics import Metrics
from statewright.models.engine import OutboxMessage
from statewright.persistence import Database

log = structlog.get_logger("statewright.relay")


class OutboxRelay:
    """Publishes due outbox rows in batches.

    Rows that another process committed a moment ago are normally published by that
    process right after its commit; ``grace`` leaves them to it, so the relay mostly
    picks up what was orphaned (a crash between commit and publish) and durable
    timers whose time has come. On PostgreSQL, ``SKIP LOCKED`` lets several relays run.
    """

    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        clock: Clock,
        metrics: Metrics,
        *,
        batch: int = 500,
        grace: timedelta = timedelta(0),
        dispatch_timeout: float = 600.0,
    ) -> None:
        self._db = db
        self._dispatcher = dispatcher
        self._clock = clock
        self._metrics = metrics
        self._batch = batch
        self._grace = grace
        self._dispatch_timeout = dispatch_timeout

    def run_once(self, *, only_run: str | None = None) -> int:
        """Send one batch of due rows (``only_run``: of that run only); returns how many."""
        now = self._clock.now()
        skip = self._dispatcher.in_flight()
        statement = (
            select(OutboxMessage)
            .where(OutboxMessage.not_before <= judged_now(self._clock, minus=self._grace))
            .order_by(OutboxMessage.not_before, OutboxMessage.id)
            .limit(self._batch)
        )
        if only_run is not None:
            statement = statement.where(OutboxMessage.run_id == only_run)
        if not self._db.is_sqlite:
            statement = statement.with_for_update(skip_locked=True)
        with self._db.transaction() as session:
            rows = session.execute(statement).scalars().all()
            messages = [TaskMessage.from_row(r) for r in rows if r.id not in skip]
            if not messages:
                return 0
            # published while the rows are still locked, so no other relay sends them too
            published = self._dispatcher.publish(messages)
            if not published:
                return 0
            sent_ids = set(published)
            steps = [r.id for r in rows if r.id in sent_ids and r.token is not None]
            if steps:
                session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(steps)))
            for row in rows:
                if row.id in sent_ids and row.token is None:
                    self._resent(row, now)
        sent = len(published)
        if sent:
            self._metrics.incr("relay.sent", sent)
            lag = (now - min(m.not_before for m in messages[:sent])).total_seconds()
            self._metrics.timing("outbox.lag", lag * 1000)
            log.debug("relay sent messages", count=sent)
        return sent

    def _resent(self, row: OutboxMessage, now: datetime) -> None:
        """A plain task's row was published (again): it waits its dispatch timeout for a
        worker, and a worker that held it and outlived its lease has lost it."""
        if row.claimed or row.sends:
            why = "worker lost" if row.claimed else "no worker took it"
            self._metrics.incr("task.redelivered", tags={"task": row.task_name})
            log.warning(
                "task sent again",
                task=row.task_name,
                outbox_id=row.id,
                attempts=row.attempts,
                reason=why,
            )
        row.not_before = now + resend_wait(self._dispatch_timeout, row.sends)
        row.sends += 1
        row.claimed = False

    def drain(self, *, only_run: str | None = None) -> int:
        """Send batches until none is due; returns the total sent."""
        total = 0
        while sent := self.run_once(only_run=only_run):
            total += sent
        return total

    def next_due(self) -> datetime | None:
        """The earliest ``not_before`` waiting in the outbox, or ``None``."""
        with self._db.reads() as session:
            due: datetime | None = session.execute(
                select(func.min(OutboxMessage.not_before))
            ).scalar()
            return due
