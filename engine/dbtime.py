"""The moment leases and due times are judged against, as SQL: the database's own clock.

The reaper and the relay compare ``lease_expires_at`` and ``not_before`` with this,
not with their process's clock, so a relay whose clock runs ahead cannot fail a
healthy run, and one that runs behind cannot hold a due timer back. An engine on a
``VirtualClock`` (tests, replay) is judged by that clock, which then stands for the
database's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from statewright.clock import Clock, VirtualClock
from statewright.models.base import UTCDateTime


class _DatabaseNow(FunctionElement[datetime]):
    """The database's current UTC time, shifted by a fixed number of seconds."""

    type = UTCDateTime()
    inherit_cache = True
    name = "statewright_database_now"
    #: The shift is rendered into the SQL, so it is part of the statement's cache key.
    _traverse_internals = [("shift", InternalTraversal.dp_plain_obj)]

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = float(shift)


@compiles(_DatabaseNow, "postgresql")
def _postgresql_now(element: _DatabaseNow, compiler: Any, **kw: Any) -> str:
    now = "(statement_timestamp() AT TIME ZONE 'UTC')"
    return f"({now} + interval '{element.shift:.6f} seconds')" if element.shift else now


@compiles(_DatabaseNow, "sqlite")
def _sqlite_now(element: _DatabaseNow, compiler: Any, **kw: Any) -> str:
    # SQLite tells milliseconds; the trailing zeros match the stored microsecond format
    shift = f", '{element.shift:+.3f} seconds'" if element.shift else ""
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now'{shift})"


def judged_now(clock: Clock, *, minus: timedelta = timedelta(0)) -> ColumnElement[datetime]:
    """Now (less ``minus``) by the database's clock, or by ``clock`` if it is virtual."""
    if isinstance(clock, VirtualClock):
        return literal(clock.now() - minus, UTCDateTime())
    return _DatabaseNow(-minus.total_seconds())


def read_database_now(connection: Any) -> datetime:
    """The database's current time, read on ``connection`` (for ``DatabaseClock``)."""
    moment: datetime = connection.execute(_DatabaseNow(0).select()).scalar_one()
    return moment


def now_in(session: Any, clock: Clock | None) -> datetime:
    """``clock``'s time if the engine was given one, else the database's, read in
    ``session`` (what fire times and retention cutoffs are judged by)."""
    return clock.now() if clock is not None else read_database_now(session)
