"""When a pooled PostgreSQL connection is pinged before use.

SQLAlchemy's ``pool_pre_ping`` pings every checkout. A step delivery checks a connection
out per message, and retries its first statement (the claim) on a connection the
database closed, so its checkouts skip the ping of a connection that rested briefly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

#: Seconds a pooled connection may rest before a step delivery's checkout pings it,
#: unless the settings say otherwise (``STATEWRIGHT_DB_PING_AFTER``; 0 pings every
#: checkout). A message step checks a connection out for each delivery; a ping each time
#: (SQLAlchemy's ``pool_pre_ping``) was a round trip of six per step. A connection used
#: within the bound is taken as it is: if the database closed it since, the delivery's
#: first statement (its claim) fails and is tried once more on a new connection
#: (``statewright.stores.postgresql``). Every other checkout (operations, queries, the
#: relay) pings as ``pool_pre_ping`` does: their first statement has no such retry.
PING_IDLE_AFTER = 1.0

_IDLE_SINCE = "statewright_idle_since"

#: Set while a step delivery checks its connection out (``rested_checkout``).
_RETRIES_ITS_FIRST_STATEMENT: ContextVar[bool] = ContextVar(
    "statewright_retries_its_first_statement", default=False
)


@contextmanager
def rested_checkout() -> Iterator[None]:
    """Checkouts inside this block skip the ping of a connection that rested less than
    the bound: for a caller that retries its first statement on a closed connection."""
    token = _RETRIES_ITS_FIRST_STATEMENT.set(True)
    try:
        yield
    finally:
        _RETRIES_ITS_FIRST_STATEMENT.reset(token)


def ping_when_rested(engine: SAEngine, idle_after: float) -> None:
    """Ping a connection on checkout, as ``pool_pre_ping`` does, unless the checkout is a
    ``rested_checkout`` and the connection rested less than ``idle_after`` seconds; a
    dead one is replaced (the pool retries the checkout)."""

    @event.listens_for(engine, "checkin")
    def _rested(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)  # none yet: connected just now
        if since is None:
            return
        if _RETRIES_ITS_FIRST_STATEMENT.get() and time.monotonic() - since < idle_after:
            return
        if not ping(engine, dbapi_connection):
            raise DisconnectionError("the pooled connection was closed by the database")


def ping(engine: SAEngine, dbapi_connection: Any) -> bool:
    """Whether a pooled connection still answers (``False``: it was disconnected)."""
    dialect = engine.dialect
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        if dialect.is_disconnect(error, dbapi_connection, None):
            return False
        raise
    return True


__all__ = ["PING_IDLE_AFTER", "ping", "ping_when_rested", "rested_checkout"]
