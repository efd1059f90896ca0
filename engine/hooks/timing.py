"""Duration and memory change of a task, in real units (milliseconds and bytes)."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from statewright.hooks import TaskCall

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int:
    """Resident memory of this process now, in bytes.

    On Linux this reads ``/proc/self/statm`` (the current figure, unlike ``ru_maxrss``,
    which only ever grows); elsewhere the peak is the best the OS tells.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@contextmanager
def timing(call: TaskCall) -> Iterator[None]:
    """Record ``task.duration`` (ms) and ``task.memory_change`` (bytes)."""
    if not call.record_timing:
        yield
        return
    started = time.perf_counter()
    memory_before = current_rss()
    status = "failed"
    try:
        yield
        status = "ok"
    finally:
        tags = {"task": call.instance, "status": status}
        call.metrics.timing("task.duration", (time.perf_counter() - started) * 1000, tags)
        call.metrics.gauge(
            "task.memory_change", current_rss() - memory_before, {"task": call.instance}
        )
