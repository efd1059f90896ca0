"""After-commit dispatch through the outbox.

A task message is written to ``workflow_outbox`` in the same transaction as the
change that emits it. Only after that transaction commits is it published to the
broker, and then its row is deleted (at once, or, with ``delete_delay``, together
with the rows published in the same moment: one delete for many steps). A message
whose transaction rolls back is
never sent; a message whose process dies between commit and publish is sent by
the ``OutboxRelay``. Messages with a future ``not_before`` wait in the outbox
(durable timers) until the relay finds them due.

A plain task's row (one without a run token) is not deleted when published: it is
the task's lease (see ``statewright.deliveries``). Publishing moves its ``not_before`` a
dispatch timeout ahead, twice as far for each further copy, so the relay sends it
again if no worker takes it in time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import delete, event, inspect, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from statewright.clock import Clock
from statewright.metrics import Metrics
from statewright.models.engine import OutboxMessage
from statewright.persistence import Database

log = structlog.get_logger("statewright.dispatch")

_PENDING = "statewright.outbox.pending"
_COMMITTED = "statewright.outbox.committed"
_HOOKED = "statewright.outbox.hooked"

#: Header that carries the time a message was published (epoch seconds).
ENQUEUED_AT_HEADER = "statewright_enqueued_at"
#: Header that carries a plain task's outbox id: the delivery it belongs to.
DELIVERY_HEADER = "statewright_delivery"
#: A message sent again for the sixth time and later waits 64 dispatch timeouts.
MAX_DOUBLINGS = 6
#: The task of a run's deadline timer: the one row of a run that carries no token and
#: is not a plain task it started.
DEADLINE_TASK = "statewright.deadline"


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """A committed outbox row, ready to publish."""

    outbox_id: int
    task_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str | None
    not_before: datetime
    #: A plain task's message, whose row stays until the task finishes.
    durable: bool = False
    #: The row's attempts and sends when it was read (a durable row's publish is fenced on both).
    attempts: int = 0
    sends: int = 0

    @classmethod
    def from_row(cls, row: OutboxMessage) -> TaskMessage:
        return cls(
            row.id,
            row.task_name,
            tuple(row.args),
            dict(row.kwargs),
            row.queue,
            row.not_before,
            durable=row.token is None,
            attempts=row.attempts or 0,
            sends=row.sends or 0,
        )

    def headers(self, published_at: float) -> dict[str, Any]:
        """The message's headers: when it was published and, for a plain task, its row."""
        headers: dict[str, Any] = {ENQUEUED_AT_HEADER: published_at}
        if self.durable:
            headers[DELIVERY_HEADER] = self.outbox_id
        return headers


def resend_wait(dispatch_timeout: float, sends: int) -> timedelta:
    """How long a message published ``sends`` times before waits for a worker: one
    dispatch timeout, twice that for the next copy, and so on up to ``MAX_DOUBLINGS``."""
    return timedelta(seconds=dispatch_timeout * 2 ** min(sends, MAX_DOUBLINGS))


class Publisher(Protocol):
    """Hands messages to a broker (or, in tests, to a local queue)."""

    def publish(self, messages: Sequence[TaskMessage]) -> int:
        """Publish in order until one fails; return how many were published."""
        ...


class Dispatcher:
    """Writes outbox rows in a session and publishes them once the session commits."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        publisher: Callable[[], Publisher | None],
        *,
        delete_delay: float = 0.0,
        dispatch_timeout: float = 600.0,
    ) -> None:
        self._db = db
        self._dispatch_timeout = dispatch_timeout
        self._clock = clock
        self._metrics = metrics
        self._publisher = publisher
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()
        #: Seconds a published row may wait to be deleted with others (0: delete at once).
        #: Must stay well under the relay's grace, or the relay sends the row again (a
        #: harmless duplicate that the claim drops).
        self.delete_delay = delete_delay
        self._published: list[int] = []
        self._sweeper_pid: int | None = None

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
        token: int | None = None,
    ) -> OutboxMessage:
        """Add a message to ``session``'s transaction; it is sent only after commit."""
        now = self._clock.now()
        row = OutboxMessage(
            task_name=task_name,
            args=list(args),
            kwargs=kwargs,
            queue=queue,
            run_id=run_id,
            token=token,
            not_before=not_before or now,
            created_at=now,
        )
        session.add(row)
        if row.not_before <= now:
            self._hook(session)
            session.info.setdefault(_PENDING, []).append(row)
        return row

    def committed_message(
        self,
        session: Session,
        task_name: str,
        *,
        outbox_id: int,
        kwargs: dict[str, Any],
        queue: str | None,
    ) -> None:
        """Publish outbox row ``outbox_id``, written in ``session``, once it commits."""
        self._hook(session)
        message = TaskMessage(outbox_id, task_name, (), kwargs, queue, self._clock.now())
        session.info.setdefault(_COMMITTED, []).append(message)

    def discard_for_run(self, session: Session, run_id: str, *, steps_only: bool = False) -> None:
        """Delete a run's waiting step and timeout messages (timers of a token the run no
        longer has) and, unless ``steps_only``, its deadline timer. The plain tasks its
        steps started are kept: they are still owed their execution."""
        owned: ColumnElement[bool] = OutboxMessage.token.is_not(None)
        if not steps_only:
            owned = or_(owned, OutboxMessage.task_name == DEADLINE_TASK)
        session.execute(delete(OutboxMessage).where(OutboxMessage.run_id == run_id, owned))

    def in_flight(self) -> frozenset[int]:
        """Outbox ids this process is publishing, or has published and not yet deleted
        (the relay leaves them alone)."""
        with self._lock:
            return frozenset(self._in_flight.union(self._published))

    def send(self, messages: Sequence[TaskMessage]) -> int:
        """Publish committed messages and delete the rows of those sent; returns how many.

        Runs after a commit, so it never raises: whatever it could not do, the relay does.
        """
        ids = [m.outbox_id for m in messages]
        with self._lock:
            self._in_flight.update(ids)
        try:
            sent = self.publish(messages)
            published = set(sent)
            self.mark_published([m for m in messages if m.durable and m.outbox_id in published])
            steps = [m.outbox_id for m in messages if not m.durable and m.outbox_id in published]
            if steps and self.delete_delay > 0:
                self._defer_delete(steps)
            elif steps:
                self._delete(steps)
            return len(sent)
        except Exception as error:
            log.warning("outbox rows not cleared; the relay will see them", error=repr(error))
            return 0
        finally:
            with self._lock:
                self._in_flight.difference_update(ids)

    def flush_deletes(self) -> int:
        """Delete the rows of every message this process has published; returns how many."""
        with self._lock:
            ids, self._published = self._published, []
        if not ids:
            return 0
        try:
            self._delete(ids)
        except Exception as error:
            with self._lock:
                self._published.extend(ids)
            log.warning("outbox rows not cleared; retrying", error=repr(error))
            return 0
        return len(ids)

    def mark_published(self, messages: Sequence[TaskMessage]) -> None:
        """Give published plain-task rows their dispatch timeout: sent again if no worker
        takes them by then. A row a worker took meanwhile is left to its worker."""
        if not messages:
            return
        now = self._clock.now()
        groups: dict[tuple[int, int], list[int]] = {}
        for message in messages:
            groups.setdefault((message.attempts, message.sends), []).append(message.outbox_id)
        row = OutboxMessage
        with self._db.engine.begin() as connection:
            for (attempts, sends), ids in groups.items():
                connection.execute(
                    update(row)
                    .where(
                        row.id.in_(ids),
                        row.claimed.is_(False),
                        row.attempts == attempts,
                        row.sends == sends,
                    )
                    .values(
                        sends=sends + 1,
                        not_before=now + resend_wait(self._dispatch_timeout, sends),
                    )
                )

    def _delete(self, ids: Sequence[int]) -> None:
        with self._db.engine.begin() as connection:
            connection.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))

    def _defer_delete(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._published.extend(ids)
            if self._sweeper_pid == os.getpid():
                return
            # one sweeper per process: a forked pool process starts its own
            self._sweeper_pid = os.getpid()
        threading.Thread(target=self._sweep, name="statewright-outbox-sweeper", daemon=True).start()

    def _sweep(self) -> None:
        pid = os.getpid()
        while self._sweeper_pid == pid:
            time.sleep(self.delete_delay)
            self.flush_deletes()

    def publish(self, messages: Sequence[TaskMessage]) -> list[int]:
        """Hand messages to the broker, in order; returns the outbox ids it accepted.

        Nothing is published when this process has no publisher (an embedded engine
        without its worker: the worker's relay sends them); publishing stops at the
        first broker failure, and the rest stay in the outbox.
        """
        publisher = self._publisher()
        if publisher is None or not messages:
            return []
        count = publisher.publish(messages)
        if count < len(messages):
            self._metrics.incr("outbox.publish_failed", len(messages) - count)
        self._metrics.incr("outbox.sent", count)
        return [m.outbox_id for m in messages[:count]]

    def _hook(self, session: Session) -> None:
        if session.info.get(_HOOKED):
            return
        session.info[_HOOKED] = True
        event.listen(session, "before_commit", _snapshot)
        event.listen(session, "after_commit", self._after_commit)
        event.listen(session, "after_rollback", _discard)

    def _after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint was released; the real commit is still to come
        messages: list[TaskMessage] = session.info.pop(_COMMITTED, [])
        if messages:
            self.send(messages)


def _snapshot(session: Session) -> None:
    if session.in_nested_transaction():
        return
    rows: list[OutboxMessage] = session.info.pop(_PENDING, [])
    if not rows:
        return
    session.flush()
    kept = [TaskMessage.from_row(r) for r in rows if inspect(r).persistent]
    session.info.setdefault(_COMMITTED, []).extend(kept)


def _discard(session: Session) -> None:
    if session.in_nested_transaction():
        return  # rows added in a rolled-back savepoint are no longer persistent
    session.info.pop(_PENDING, None)
    session.info.pop(_COMMITTED, None)
