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

#: This process's ``/proc/<pid>/statm``, kept open: (pid, descriptor). A forked pool
#: process opens its own (the parent's descriptor would tell the parent's memory).
_statm: tuple[int, int] | None = None


def current_rss() -> int:
    """Resident memory of this process now, in bytes.

    On Linux this reads ``/proc/<pid>/statm`` (the current figure, unlike ``ru_maxrss``,
    which only ever grows) through a descriptor kept open, twice per task; elsewhere the
    peak is the best the OS tells.
    """
    global _statm
    pid = os.getpid()
    try:
        if _statm is None or _statm[0] != pid:
            _statm = (pid, os.open(f"/proc/{pid}/statm", os.O_RDONLY))
        return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE
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
