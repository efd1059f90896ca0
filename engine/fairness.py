"""Fair continuation: when a delivery stops running its run's next steps in process.

A delivery that continues its run (see ``StepExecutor._continuation``) holds its
worker process; every other run's message waits behind it. ``FairContinuation``
lets a delivery continue freely while its queue is empty, and at most
``busy_steps`` steps once other messages are waiting on that queue; after that the
run's next step goes to the back of the queue as a message, like anyone else's.

Whether messages wait is asked of the broker (a passive queue declaration: ``LLEN``
on Redis, one ``queue.declare`` on RabbitMQ), at most once every ``check_every``
seconds per queue and process; the answer is kept in between. If the broker cannot
answer, the delivery continues as it would without this policy (the time limit of
``continue_for`` still bounds it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("statewright.fairness")

#: How long an answer about a queue's backlog is kept (seconds).
CHECK_EVERY = 0.02

#: Messages waiting on a queue, or ``None`` when the broker cannot tell.
WaitingCounter = Callable[[str], int | None]


@dataclass(slots=True)
class _Streak:
    """The steps one delivery (known by its start) has continued to so far."""

    delivery: float
    steps: int


class FairContinuation:
    """Decides, step by step, whether a delivery may continue its run in process."""

    def __init__(
        self,
        waiting: WaitingCounter,
        busy_steps: int,
        *,
        check_every: float = CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(busy_steps, bool) or not isinstance(busy_steps, int) or busy_steps < 0:
            raise ValueError(f"busy_steps {busy_steps!r} is not a whole number of steps >= 0")
        self._waiting = waiting
        self.busy_steps = busy_steps
        self._check_every = check_every
        self._clock = clock
        self._answers: dict[str, tuple[float, bool]] = {}
        self._streaks: dict[int, _Streak] = {}
        self._lock = threading.Lock()
        self._warned = False

    def allows(self, queue: str, delivery: float) -> bool:
        """Whether the delivery that started at ``delivery`` (its monotonic start, which
        tells one delivery from the next in this thread) may run one more step of its
        run from ``queue``; counts the step when it may."""
        thread = threading.get_ident()
        streak = self._streaks.get(thread)
        if streak is None or streak.delivery != delivery:
            streak = self._streaks[thread] = _Streak(delivery, 0)
        if streak.steps >= self.busy_steps and self.others_waiting(queue):
            return False
        streak.steps += 1
        return True

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
    their own queues), a passive declaration's message count on AMQP."""
    from celery import Celery
    from kombu.exceptions import ChannelError

    assert isinstance(app, Celery)

    def waiting(queue: str) -> int | None:
        pool: Any = app.pool  # a connection pool (typed as a producer pool by the stubs)
        with pool.acquire(block=True, timeout=1.0) as connection:
            channel = connection.default_channel
            size = getattr(channel, "_size", None)
            if callable(size):  # a virtual transport (Redis, memory): a missing list is empty
                return int(size(queue))
            try:
                declared = channel.queue_declare(queue=queue, passive=True)
            except ChannelError:
                return 0
        count = getattr(declared, "message_count", None)
        return int(count) if count is not None else None

    return waiting
