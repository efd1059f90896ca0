"""The loan workflow end to end on statewright's fixtures (SQLite, or PostgreSQL when
STATEWRIGHT_TEST_DATABASE_URL names a server)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect, select
from workflows.loans import apply_for_loan

from models import LoanRecord
from statewright import Engine
from statewright.testing import WorkflowHarness


def loan(engine: Engine, number: str) -> LoanRecord:
    with engine.db.transaction() as session:
        found = session.scalars(select(LoanRecord).where(LoanRecord.loan_number == number))
        return found.one()


def test_the_fixtures_make_statewrights_tables_and_ours(statewright_engine: Engine) -> None:
    """The test database has the engine's tables and the loan table, and no others."""
    tables = set(inspect(statewright_engine.db.engine).get_table_names())
    assert {"workflow_runs", "loan_applications"} <= tables
    assert "relocations" not in tables


def test_an_application_with_documents_is_approved(
    statewright_engine: Engine, statewright_harness: WorkflowHarness
) -> None:
    """Scored, documents signalled, underwritten: the record says approved."""
    run = apply_for_loan(statewright_engine, "L-1001", "Ada Lovelace", 20_000)
    waiting = statewright_harness.run(run.id, until_waiting=True)
    assert waiting.state == "awaiting_documents"
    assert loan(statewright_engine, "L-1001").status == "awaiting_documents"
    statewright_engine.signal(run.id, "documents_received", {"documents": ["payslip"]})
    assert statewright_harness.run(run.id).state == "approved"
    assert loan(statewright_engine, "L-1001").status == "approved"


def test_a_withdrawn_application_says_withdrawn(
    statewright_engine: Engine, statewright_harness: WorkflowHarness
) -> None:
    """Cancelling the run marks the loan withdrawn in the same transaction."""
    run = apply_for_loan(statewright_engine, "L-1002", "Grace Hopper", 5_000)
    statewright_harness.run(run.id, until_waiting=True)
    assert statewright_engine.cancel(run.id).status == "cancelled"
    assert loan(statewright_engine, "L-1002").status == "withdrawn"


def test_missing_documents_decline_the_loan_after_30_days(
    statewright_engine: Engine, statewright_harness: WorkflowHarness
) -> None:
    """The documents wait times out on the virtual clock and the loan is declined."""
    run = apply_for_loan(statewright_engine, "L-1003", "Alan Turing", 9_000)
    statewright_harness.run(run.id, until_waiting=True)
    statewright_harness.advance(timedelta(days=31))
    assert statewright_harness.run(run.id).state == "declined"
    assert loan(statewright_engine, "L-1003").status == "declined"


def test_a_run_is_found_by_its_loan_number(statewright_engine: Engine) -> None:
    """The loan number is the run's business key."""
    run = apply_for_loan(statewright_engine, "L-1004", "Edsger Dijkstra", 1_000)
    apply_for_loan(statewright_engine, "L-1005", "Barbara Liskov", 1_000)
    assert [r.id for r in statewright_engine.list(key="L-1004")] == [run.id]
