"""Time a message waited in the broker, from the enqueue header to the task starting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from statewright.dispatch import ENQUEUED_AT_HEADER
from statewright.hooks import TaskCall


@contextmanager
def queue_time(call: TaskCall) -> Iterator[None]:
    """Record ``task.queue_time`` (ms) when the message carries its enqueue time."""
    enqueued = call.headers.get(ENQUEUED_AT_HEADER)
    if isinstance(enqueued, int | float):
        waited = max(0.0, time.time() - float(enqueued)) * 1000
        call.metrics.timing("task.queue_time", waited, {"task": call.instance})
    yield
