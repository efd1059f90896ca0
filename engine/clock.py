"""Time as a dependency: the engine never reads the wall clock directly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


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
