"""Pooled PostgreSQL connections: pinged on checkout only after resting, replaced if dead."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from statewright import persistence
from statewright.config import Settings
from statewright.errors import ConfigurationError
from statewright.persistence import Database


def _backend_pid(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _counting_pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every ping the pool sends on ``db``'s connections: whether the connection answered."""
    answers: list[bool] = []
    dialect = db.engine.dialect
    original = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        try:
            original(dbapi_connection)
        except Exception:
            answers.append(False)
            raise
        answers.append(True)
        return True

    monkeypatch.setattr(dialect, "do_ping", counted)
    return answers


def test_a_connection_used_within_the_idle_bound_is_not_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking out a connection that rested less than the bound sends no ping."""
    db = Database(pg_url)
    pings = _counting_pings(db, monkeypatch)
    try:
        first = _backend_pid(db)
        assert [_backend_pid(db) for _ in range(20)] == [first] * 20
        assert pings == []
    finally:
        db.dispose()


def test_a_connection_killed_while_resting_is_replaced_on_checkout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection the database closed while it rested past the bound is pinged, found
    dead and replaced: the caller gets a working connection and sees no error."""
    monkeypatch.setattr(persistence, "PING_IDLE_AFTER", 0.05)
    db = Database(pg_url)
    pings = _counting_pings(db, monkeypatch)
    killer = create_engine(pg_url)
    try:
        victim = _backend_pid(db)
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        time.sleep(0.1)
        assert _backend_pid(db) != victim
        assert pings == [False]
        time.sleep(0.1)
        _backend_pid(db)
        assert pings == [False, True]  # the new connection rested too: pinged, alive
    finally:
        db.dispose()
        killer.dispose()


def test_a_ping_bound_of_zero_pings_every_checkout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``ping_after=0`` (STATEWRIGHT_DB_PING_AFTER=0) every checkout is pinged."""
    db = Database(pg_url, ping_after=0)
    pings = _counting_pings(db, monkeypatch)
    try:
        for _ in range(5):
            _backend_pid(db)
        assert pings == [True] * 4  # the first checkout got a connection made just now
    finally:
        db.dispose()


def test_the_ping_bound_setting_is_checked() -> None:
    """STATEWRIGHT_DB_PING_AFTER takes zero or positive seconds; anything else is refused,
    naming it."""
    assert Settings.from_env({}).db_ping_after == 1.0
    assert Settings.from_env({"STATEWRIGHT_DB_PING_AFTER": "0"}).db_ping_after == 0
    assert Settings.from_env({"STATEWRIGHT_DB_PING_AFTER": "2.5"}).db_ping_after == 2.5
    for bad in ("-1", "often"):
        with pytest.raises(ConfigurationError, match=f"STATEWRIGHT_DB_PING_AFTER '{bad}'"):
            Settings.from_env({"STATEWRIGHT_DB_PING_AFTER": bad})
