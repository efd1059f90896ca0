"""The run store: the run table's statements, as each database runs them, behind one
interface chosen once per ``Database``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from statewright.models import WorkflowRun
from statewright.stores import PostgresRunStore, SqliteRunStore
from tests.conftest import EngineFactory


def test_each_database_gets_the_store_of_its_kind(make_engine: EngineFactory) -> None:
    """A SQLite URL gets the SQLite store, a PostgreSQL URL the PostgreSQL one."""
    engine = make_engine()
    expected = SqliteRunStore if engine.db.url.startswith("sqlite") else PostgresRunStore
    assert type(engine.db.runs) is expected
    assert engine.db.runs.dialect == ("sqlite" if expected is SqliteRunStore else "postgresql")


def test_expired_leases_are_listed_earliest_first(make_engine: EngineFactory) -> None:
    """Only running runs whose lease lapsed before the given time, earliest first."""
    engine = make_engine()
    now = engine.clock.now()
    ids = [engine.start("pipeline", {}).id for _ in range(3)]
    leases = [now - timedelta(seconds=5), now - timedelta(seconds=30), now + timedelta(hours=1)]
    with engine.db.transaction() as session:
        for run_id, lease in zip(ids, leases, strict=True):
            session.execute(
                update(WorkflowRun).where(WorkflowRun.id == run_id).values(lease_expires_at=lease)
            )
    with engine.db.transaction() as session:
        runs = engine.db.runs.running_runs(session, ["pipeline"], expired_before=now, limit=10)
        assert [run.id for run in runs] == [ids[1], ids[0]]
        only = engine.db.runs.running_runs(session, ["pipeline"], only_run=ids[0], unclaimed=True)
        assert [run.id for run in only] == [ids[0]]
        assert engine.db.runs.running_runs(session, ["waiter"]) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_skips_runs_another_transaction_holds(make_engine: EngineFactory) -> None:
    """A run locked by another transaction is left out of the listing, not waited for."""
    engine = make_engine()
    held, free = (engine.start("pipeline", {}).id for _ in range(2))
    with engine.db.transaction() as holder:
        assert engine.db.runs.lock(holder, held) is not None
        with engine.db.transaction() as session:
            runs = engine.db.runs.running_runs(session, ["pipeline"])
            assert [run.id for run in runs] == [free]
            due = engine.db.runs.due_outbox(session, engine.clock.now(), limit=10)
            assert {row.run_id for row in due} == {held, free}
