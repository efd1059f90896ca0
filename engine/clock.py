"""Time as a dependency: the engine never reads the wall clock directly.

Leases, due times and deadlines are written and judged by one clock, the database's:
``DatabaseClock`` reads it through this process's own clock (re-measured as it goes),
and the reaper and relay compare against it in SQL (``statewright.dbtime``). A
``VirtualClock`` (tests, replay) stands for every clock, the database's included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

log = structlog.get_logger("statewright.clock")


class Clock(Protocol):
    """Tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that moves only when told to, so tests and replay never sleep."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: timedelta | float) -> datetime:
        """Move forward by ``by`` (a timedelta or seconds) and return the new time."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"a virtual clock only moves forward; got {step}")
        with self._lock:
            self._now += step
            return self._now

    def advance_to(self, moment: datetime) -> datetime:
        """Move forward to ``moment`` (never backwards) and return the new time."""
        with self._lock:
            if moment > self._now:
                self._now = moment
            return self._now


class DatabaseClock:
    """The database's clock, told through ``base``: ``base`` plus the offset last
    measured against the database (``read_database``), measured again every ``every``
    seconds. A worker or relay whose own clock is off by minutes writes leases and due
    times as the database tells time, so no process's skew can expire a healthy lease
    or fire a timer early.

    A measurement costs one query (none per step); one that fails keeps the last offset.
    """

    def __init__(
        self,
        base: Clock,
        read_database: Callable[[], datetime],
        *,
        every: float = 30.0,
    ) -> None:
        self.base = base
        self._read_database = read_database
        self._every = every
        self._offset = timedelta(0)
        self._next_measure = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        if time.monotonic() >= self._next_measure:
            self.measure()
        return self.base.now() + self._offset

    @property
    def offset(self) -> timedelta:
        """The database's clock minus ``base``'s, as last measured."""
        return self._offset

    def measure(self) -> None:
        """Measure the offset now (unless another thread is measuring it)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._next_measure = time.monotonic() + self._every
            before = self.base.now()
            database = self._read_database()
            after = self.base.now()
            self._offset = database - (before + (after - before) / 2)
        except Exception as error:  # the database is away: keep the last offset, try later
            log.warning("database clock not read; keeping the last offset", error=repr(error))
        finally:
            self._lock.release()
