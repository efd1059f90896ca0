"""Fair continuation: when a delivery stops running its run's next steps in process.

A delivery that continues its run (see ``StepExecutor._continuation``) holds its
worker process; every other run's message waits behind it. ``FairContinuation``
lets a delivery continue freely while its queue is empty, and once other messages
wait on that queue, only while it has run for less than ``busy_for`` seconds (a
scheduler's quantum); after that the run's next step goes to the back of the queue
as a message, like anyone else's. ``continue_for`` still bounds every delivery.

Whether messages wait is asked of the broker (``LLEN`` on Redis, a passive queue
declaration on a channel of its own on RabbitMQ), at most once every ``check_every``
seconds per queue and process, and only once the delivery has used its quantum; the
answer is kept in between. If the broker cannot answer, the delivery continues as it would without
this policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("statewright.fairness")

#: How long an answer about a queue's backlog is kept (seconds).
CHECK_EVERY = 0.02

#: Messages waiting on a queue, or ``None`` when the broker cannot tell.
WaitingCounter = Callable[[str], int | None]


class FairContinuation:
    """Decides, step by step, whether a delivery may continue its run in process."""

    def __init__(
        self,
        waiting: WaitingCounter,
        busy_for: float,
        *,
        check_every: float = CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(busy_for, bool) or not isinstance(busy_for, int | float) or busy_for < 0:
            raise ValueError(f"busy_for {busy_for!r} is not zero or a positive number of seconds")
        self._waiting = waiting
        self.busy_for = float(busy_for)
        self._check_every = check_every
        self._clock = clock
        self._answers: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()
        self._warned = False

    def allows(self, queue: str, delivery: float) -> bool:
        """Whether the delivery that started at ``delivery`` (``time.monotonic()``, the
        policy's clock) may run one more step of its run from ``queue``."""
        if self._clock() - delivery < self.busy_for:
            return True
        return not self.others_waiting(queue)

    def others_waiting(self, queue: str) -> bool:
        """Whether messages wait on ``queue`` (an answer at most ``check_every`` old)."""
        now = self._clock()
        with self._lock:
            known = self._answers.get(queue)
            if known is not None and now - known[0] < self._check_every:
                return known[1]
        try:
            count = self._waiting(queue)
        except Exception as error:  # the broker is away: continue as without fairness
            if not self._warned:
                log.warning("cannot tell the queue's backlog", queue=queue, error=repr(error))
                self._warned = True
            count = None
        busy = bool(count)
        with self._lock:
            self._answers[queue] = (now, busy)
        return busy


def broker_waiting(app: object) -> WaitingCounter:
    """A ``WaitingCounter`` over a Celery app's broker, on a connection from the app's
    pool: ``LLEN`` of the queue's lists on Redis (kombu's virtual transports count
    their own queues), a passive declaration's message count on AMQP.

    On AMQP the declaration goes on a channel of its own, closed after: the broker
    answers a queue that does not exist (0 waiting) by closing the channel, which must
    not be the connection's default channel, the one its producer publishes on."""
    from celery import Celery
    from kombu.exceptions import ChannelError

    assert isinstance(app, Celery)

    def waiting(queue: str) -> int | None:
        pool: Any = app.pool  # a connection pool (typed as a producer pool by the stubs)
        with pool.acquire(block=True, timeout=1.0) as connection:
            size = getattr(connection.default_channel, "_size", None)
            if callable(size):  # a virtual transport (Redis, memory): a missing list is empty
                return int(size(queue))
            channel = connection.channel()
            try:
                declared = channel.queue_declare(queue=queue, passive=True)
            except ChannelError:
                return 0
            finally:
                channel.close()
        count = getattr(declared, "message_count", None)
        return int(count) if count is not None else None

    return waiting
