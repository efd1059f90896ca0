"""Pooled PostgreSQL connections: a step delivery's checkout pings only a connection that
rested past the bound, and its claim survives a connection closed since; every other
checkout pings."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from statewright import Engine, pool_ping
from statewright.config import Settings
from statewright.errors import ConfigurationError
from statewright.persistence import Database
from statewright.pool_ping import rested_checkout
from statewright.testing import WorkflowHarness


def _backend_pid(db: Database, *, rested: bool = False) -> int:
    """The backend of the connection a checkout gets (as a step delivery's if ``rested``)."""
    with rested_checkout() if rested else nullcontext():
        connection = db.engine.connect()
    with connection:
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


def _terminate_others(url: str) -> int:
    """Close every other client connection to the test database; how many there were."""
    killer = create_engine(url)
    try:
        with killer.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend'"
                    )
                ).scalar_one()
            )
    finally:
        killer.dispose()


def test_a_delivery_checkout_within_the_bound_is_not_pinged_and_others_are(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step delivery's checkout of a connection that rested less than the bound sends
    no ping; any other checkout pings, as SQLAlchemy's pool_pre_ping does."""
    db = Database(pg_url)
    pings = _counting_pings(db, monkeypatch)
    try:
        first = _backend_pid(db, rested=True)
        assert [_backend_pid(db, rested=True) for _ in range(20)] == [first] * 20
        assert pings == []
        assert [_backend_pid(db) for _ in range(3)] == [first] * 3
        assert pings == [True] * 3
    finally:
        db.dispose()


def test_a_connection_closed_while_resting_is_replaced_on_checkout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection the database closed is pinged, found dead and replaced: by a delivery's
    checkout once it rested past the bound, by any other checkout at once."""
    monkeypatch.setattr(pool_ping, "PING_IDLE_AFTER", 0.05)
    db = Database(pg_url)
    pings = _counting_pings(db, monkeypatch)
    try:
        victim = _backend_pid(db)
        assert _terminate_others(pg_url) >= 1
        time.sleep(0.1)
        replaced = _backend_pid(db, rested=True)
        assert replaced != victim
        assert pings == [False]
        assert _terminate_others(pg_url) >= 1
        assert _backend_pid(db) not in (victim, replaced)  # pinged at once, though fresh
        assert pings == [False, False]
    finally:
        db.dispose()


def test_a_ping_bound_of_zero_pings_every_checkout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``ping_after=0`` (STATEWRIGHT_DB_PING_AFTER=0) a delivery's checkouts are
    pinged too."""
    db = Database(pg_url, ping_after=0)
    pings = _counting_pings(db, monkeypatch)
    try:
        for _ in range(5):
            _backend_pid(db, rested=True)
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


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_step_claimed_on_a_connection_closed_since_its_last_use_still_runs(
    engine: Engine, harness: WorkflowHarness, pg_url: str
) -> None:
    """A delivery whose pooled connection the database closed within the ping bound (so
    it was not pinged) claims on a new connection and runs its step, with no error."""
    run = engine.start("pipeline")
    pool = engine.db.engine
    held = [pool.connect() for _ in range(3)]  # the pool keeps three connections
    for connection in held:
        connection.close()
    assert _terminate_others(pg_url) >= 3
    # the first checkout (the harness reading the run) is pinged and gets a new
    # connection; the delivery's, next in the pool, gets a closed one and claims again
    finished = harness.run(run.id)
    assert finished.status == "succeeded"
    assert [h.trigger for h in engine.history(run.id)] == [
        "start",
        "fetched",
        "transformed",
        "stored",
    ]
