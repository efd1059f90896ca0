"""Durable task deliveries: a plain task's outbox row is its lease.

A task dispatched through the outbox (any task that is not a workflow step) keeps
its row until it finishes or gives up. Publishing moves the row's ``not_before`` a
dispatch timeout ahead (see ``statewright.dispatch``); a worker that takes the message
claims the row (one more attempt, leased past the task's time limit); finishing
deletes the row; a retry sets the time it is due again. Whatever is lost in between
(the message, or the worker after it acked), the relay finds the row due and sends it
again. A copy that arrives while another delivery holds the row, or after the task
finished, is dropped and counted.

The task sees its delivery (``current_delivery()``, ``TaskContext.delivery``): a
stable idempotency key and the attempt. ``TaskDelivery.done(session)`` marks the
task done inside the task's own last transaction, so its writes and the mark commit
together, and a delivery that lost the task to a newer one rolls back instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog
from celery.exceptions import Ignore, Reject, Retry
from sqlalchemy import CursorResult, delete, event, select, update
from sqlalchemy.orm import Session

from statewright.clock import Clock
from statewright.metrics import Metrics
from statewright.models.engine import OutboxMessage
from statewright.persistence import Database

log = structlog.get_logger("statewright.deliveries")


class DeliverySuperseded(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by ``TaskDelivery.done`` when a newer delivery took the task over: the
    transaction it was called in rolls back and this delivery ends quietly."""


@dataclass(frozen=True, slots=True)
class TaskDelivery:
    """One delivery of a task dispatched through the outbox, as its worker claimed it."""

    outbox_id: int
    task_name: str
    #: 1 for the first delivery a worker took; counts every later one (retries, lost workers).
    attempt: int
    #: The run whose step (or task) dispatched this one, if any.
    run_id: str | None
    _deliveries: TaskDeliveries = field(repr=False, compare=False)

    @property
    def idempotency_key(self) -> str:
        """The same for every delivery of this dispatch: pass it to outside services."""
        return f"{self.task_name}:{self.outbox_id}"

    @property
    def redelivered(self) -> bool:
        """Whether an earlier delivery of the same dispatch was taken by a worker."""
        return self.attempt > 1

    def done(self, session: Session) -> None:
        """Mark the task done in ``session``'s transaction (once, in the task's last one),
        so the mark commits together with the task's writes. Raises ``DeliverySuperseded``
        if a newer delivery took the task over (that transaction must then roll back)."""
        self._deliveries.mark_done(session, self)


_current: ContextVar[TaskDelivery | None] = ContextVar("statewright_delivery", default=None)


def current_delivery() -> TaskDelivery | None:
    """The delivery of the task running in this context, if it came through the outbox."""
    return _current.get()


@dataclass(frozen=True, slots=True)
class PendingTask:
    """A task dispatched through the outbox that has not finished yet."""

    outbox_id: int
    task_name: str
    attempts: int
    running: bool
    #: When it is sent (again) unless it finishes first.
    due: datetime


class TaskDeliveries:
    """Claims, finishes, retries and gives up plain-task deliveries against their rows."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        *,
        default_time_limit: float,
        lease_grace: float,
    ) -> None:
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._default_time_limit = default_time_limit
        self._lease_grace = lease_grace
        #: Deliveries whose done mark committed with the task's writes (nothing left to do).
        self._marked: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def claim(
        self, outbox_id: int, task_name: str, *, time_limit: float | None, max_attempts: int | None
    ) -> TaskDelivery | None:
        """Take the row for this delivery, or ``None`` if the message is to be dropped (the
        task finished, another delivery holds it, or its attempts are spent)."""
        row = OutboxMessage
        limit = time_limit if time_limit else self._default_time_limit
        lease = self._clock.now() + timedelta(seconds=limit + self._lease_grace)
        take = (
            update(row)
            .where(row.id == outbox_id, row.token.is_(None), row.claimed.is_(False))
            .values(claimed=True, attempts=row.attempts + 1, sends=0, not_before=lease)
            .returning(row.attempts, row.run_id)
        )
        with self._db.transaction() as session:
            claimed = session.execute(take).first()
            if claimed is None:
                # A relay re-sending a lost worker's task publishes before it commits the row
                # as unclaimed; the message can arrive first. Wait for whoever holds the row,
                # then try once more: a copy is dropped only against what was committed.
                session.execute(select(row.id).where(row.id == outbox_id).with_for_update())
                claimed = session.execute(take).first()
            if claimed is None:
                held = session.execute(select(row.id).where(row.id == outbox_id)).first()
                self._dropped(task_name, "duplicate" if held else "done")
                return None
            attempts, run_id = claimed
            if max_attempts is not None and attempts > max_attempts:
                session.execute(delete(row).where(row.id == outbox_id))
                self._gave_up(task_name, outbox_id, attempts - 1, "worker lost")
                return None
        return TaskDelivery(outbox_id, task_name, attempts, run_id, self)

    def finish(self, delivery: TaskDelivery) -> None:
        """The task returned: delete its row (unless a newer delivery holds it, or the
        task's own transaction already did)."""
        with self._lock:
            marked = (delivery.outbox_id, delivery.attempt) in self._marked
            self._marked.discard((delivery.outbox_id, delivery.attempt))
        if not marked:
            with self._db.transaction() as session:
                session.execute(self._ours(delete(OutboxMessage), delivery))
        self._metrics.incr("task.finished", tags={"task": delivery.task_name})

    def mark_done(self, session: Session, delivery: TaskDelivery) -> None:
        statement = self._ours(delete(OutboxMessage), delivery)
        if not cast(CursorResult[Any], session.execute(statement)).rowcount:
            raise DeliverySuperseded(
                f"task {delivery.task_name} (outbox row {delivery.outbox_id}) was taken over "
                f"by a newer delivery than attempt {delivery.attempt}, or already marked done"
            )
        key = (delivery.outbox_id, delivery.attempt)

        def committed(_: Session) -> None:
            with self._lock:
                self._marked.add(key)

        event.listen(session, "after_commit", committed, once=True)

    def retry_at(
        self,
        delivery: TaskDelivery,
        *,
        eta: datetime | None,
        countdown: float | None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """The task asked to be retried at ``eta`` or after ``countdown`` seconds: its row
        is due again then (a durable timer, not a countdown in the broker)."""
        when = retry_time(self._clock.now(), eta, countdown)
        values: dict[str, Any] = {"claimed": False, "sends": 0, "not_before": when}
        if args is not None:
            values["args"] = list(args)
        if kwargs is not None:
            values["kwargs"] = kwargs
        with self._db.transaction() as session:
            session.execute(self._ours(update(OutboxMessage), delivery).values(**values))
        self._metrics.incr("task.retried", tags={"task": delivery.task_name})

    def give_up(self, delivery: TaskDelivery, error: BaseException) -> None:
        """The task failed for good (no retry left): its row goes, and the failure is logged."""
        with self._db.transaction() as session:
            session.execute(self._ours(delete(OutboxMessage), delivery))
        self._gave_up(delivery.task_name, delivery.outbox_id, delivery.attempt, repr(error)[:500])

    def superseded(self, delivery: TaskDelivery) -> None:
        self._dropped(delivery.task_name, "superseded")

    def recover_all(self, *, only_run: str | None = None) -> int:
        """Make every published, unclaimed task row due now (only ``only_run``'s, if
        given); returns how many.

        Used when an embedded worker starts: the in-memory queue those messages were
        published to died with the last process. Rows a worker holds wait for their lease.
        """
        row = OutboxMessage
        query = update(row).where(row.token.is_(None), row.claimed.is_(False), row.sends > 0)
        if only_run is not None:
            query = query.where(row.run_id == only_run)
        with self._db.transaction() as session:
            result = session.execute(query.values(not_before=self._clock.now(), sends=0))
            return int(cast(CursorResult[Any], result).rowcount or 0)

    def pending(self, run_id: str) -> list[PendingTask]:
        """The tasks that ``run_id``'s steps (and their tasks) dispatched, not yet finished."""
        row = OutboxMessage
        with self._db.reads() as session:
            rows = session.execute(
                select(row.id, row.task_name, row.attempts, row.claimed, row.not_before)
                .where(row.run_id == run_id, row.token.is_(None))
                .order_by(row.id)
            ).all()
        return [PendingTask(*values) for values in rows]

    def _ours(self, statement: Any, delivery: TaskDelivery) -> Any:
        """``statement`` limited to the row while no newer delivery has claimed it."""
        row = OutboxMessage
        return statement.where(row.id == delivery.outbox_id, row.attempts == delivery.attempt)

    def _dropped(self, task_name: str, reason: str) -> None:
        self._metrics.incr("task.dropped", tags={"task": task_name, "reason": reason})
        log.info("task message dropped", task=task_name, reason=reason)

    def _gave_up(self, task_name: str, outbox_id: int, attempts: int, why: str) -> None:
        self._metrics.incr("task.gave_up", tags={"task": task_name})
        log.warning(
            "task gave up", task=task_name, outbox_id=outbox_id, attempts=attempts, reason=why
        )


def run_delivery(
    deliveries: TaskDeliveries, delivery: TaskDelivery, body: Callable[[], Any]
) -> Any:
    """Run a claimed delivery's task body and settle its row by how it ended.

    A ``Retry`` was recorded by the task's ``retry``; ``Ignore`` says the task is done;
    ``Reject`` leaves the row to its lease; any other error gives the task up (its
    retries, if it has any, were asked for through ``retry``).
    """
    token = _current.set(delivery)
    try:
        result = body()
    except DeliverySuperseded:
        deliveries.superseded(delivery)
        return None
    except (Retry, Reject):
        raise
    except Ignore:
        deliveries.finish(delivery)
        raise
    except Exception as error:
        deliveries.give_up(delivery, error)
        raise
    finally:
        _current.reset(token)
    deliveries.finish(delivery)
    return result


def retry_time(now: datetime, eta: datetime | None, countdown: float | None) -> datetime:
    """When a retry asked with ``eta`` or ``countdown`` is due (naive ``eta`` is UTC)."""
    if eta is not None:
        return eta if eta.tzinfo is not None else eta.replace(tzinfo=UTC)
    return now + timedelta(seconds=countdown or 0)
