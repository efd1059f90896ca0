"""The database's clock: the one time every relay and process agrees on.

Fire times and retention cutoffs are judged by it, so relays on machines whose clocks
drift apart still agree on what is due. An engine built with a clock of its own (a
``VirtualClock`` in tests) is judged by that clock instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from engine.clock import Clock


def database_now(session: Session) -> datetime:
    """The database server's current time, as an aware UTC datetime."""
    if session.get_bind().dialect.name == "sqlite":
        value = session.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    moment: datetime = session.execute(text("SELECT clock_timestamp()")).scalar_one()
    return moment.astimezone(UTC)


def now_in(session: Session, clock: Clock | None) -> datetime:
    """``clock``'s time if the engine was given one, else the database's."""
    return clock.now() if clock is not None else database_now(session)
