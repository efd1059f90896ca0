"""After-commit dispatch through the outbox.

A task message is written to ``workflow_outbox`` in the same transaction as the
change that emits it. Only after that transaction commits is it published to the
broker, and then its row is deleted. A message whose transaction rolls back is
never sent; a message whose process dies between commit and publish is sent by
the ``OutboxRelay``. Messages with a future ``not_before`` wait in the outbox
(durable timers) until the relay finds them due.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import delete, event, inspect
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.metrics import Metrics
from engine.persistence import Database
from models.engine import OutboxMessage

log = structlog.get_logger("statewright.dispatch")

_PENDING = "statewright.outbox.pending"
_COMMITTED = "statewright.outbox.committed"
_HOOKED = "statewright.outbox.hooked"

#: Header that carries the time a message was published (epoch seconds).
ENQUEUED_AT_HEADER = "statewright_enqueued_at"


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """A committed outbox row, ready to publish."""

    outbox_id: int
    task_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str | None
    not_before: datetime

    @classmethod
    def from_row(cls, row: OutboxMessage) -> TaskMessage:
        return cls(
            row.id, row.task_name, tuple(row.args), dict(row.kwargs), row.queue, row.not_before
        )


class Publisher(Protocol):
    """Hands messages to a broker (or, in tests, to a local queue)."""

    def publish(self, messages: Sequence[TaskMessage]) -> None: ...


class Dispatcher:
    """Writes outbox rows in a session and publishes them once the session commits."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        publisher: Callable[[], Publisher | None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._publisher = publisher
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()

    def enqueue(
        self,
        session: Session,
        task_name: str,
        *,
        kwargs: dict[str, Any],
        args: Sequence[Any] = (),
        queue: str | None = None,
        not_before: datetime | None = None,
        run_id: str | None = None,
    ) -> OutboxMessage:
        """Add a message to ``session``'s transaction; it is sent only after commit."""
        now = self._clock.now()
        row = OutboxMessage(
            task_name=task_name,
            args=list(args),
            kwargs=kwargs,
            queue=queue,
            run_id=run_id,
            not_before=not_before or now,
            created_at=now,
        )
        session.add(row)
        if row.not_before <= now:
            self._hook(session)
            session.info.setdefault(_PENDING, []).append(row)
        return row

    def in_flight(self) -> frozenset[int]:
        """Outbox ids this process is publishing right now (the relay leaves them alone)."""
        with self._lock:
            return frozenset(self._in_flight)

    def send(self, messages: Sequence[TaskMessage]) -> int:
        """Publish committed messages and delete their rows; returns how many were sent."""
        if not self.publish(messages):
            return 0
        with self._db.engine.begin() as connection:
            connection.execute(
                delete(OutboxMessage).where(OutboxMessage.id.in_([m.outbox_id for m in messages]))
            )
        return len(messages)

    def publish(self, messages: Sequence[TaskMessage]) -> bool:
        """Hand messages to the broker; ``False`` if they must stay in the outbox.

        They stay when this process has no publisher (an embedded engine without its
        worker: the worker's relay sends them) or when the broker fails.
        """
        publisher = self._publisher()
        if publisher is None or not messages:
            return False
        ids = [m.outbox_id for m in messages]
        with self._lock:
            self._in_flight.update(ids)
        try:
            publisher.publish(messages)
        except Exception as error:
            self._metrics.incr("outbox.publish_failed", len(messages))
            log.warning(
                "publish failed; the relay will retry", error=repr(error), messages=len(messages)
            )
            return False
        finally:
            with self._lock:
                self._in_flight.difference_update(ids)
        self._metrics.incr("outbox.sent", len(messages))
        return True

    def _hook(self, session: Session) -> None:
        if session.info.get(_HOOKED):
            return
        session.info[_HOOKED] = True
        event.listen(session, "before_commit", _snapshot)
        event.listen(session, "after_commit", self._after_commit)
        event.listen(session, "after_rollback", _discard)

    def _after_commit(self, session: Session) -> None:
        messages: list[TaskMessage] = session.info.pop(_COMMITTED, [])
        if messages:
            self.send(messages)


def _snapshot(session: Session) -> None:
    rows: list[OutboxMessage] = session.info.pop(_PENDING, [])
    if not rows:
        return
    session.flush()
    kept = [TaskMessage.from_row(r) for r in rows if inspect(r).persistent]
    session.info.setdefault(_COMMITTED, []).extend(kept)


def _discard(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_COMMITTED, None)
