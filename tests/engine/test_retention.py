"""Retention on SQLite and PostgreSQL: finished runs older than a cutoff are deleted with
their history in batches; running, paused and recent runs are never touched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from statewright import Engine, InvalidParamsError, RunNotFoundError, UnknownWorkflowError
from statewright.models.engine import WorkflowTransition
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory

MONTH = timedelta(days=30)


@dataclass
class Runs:
    """Runs of every kind: old finished ones, and the ones a purge must leave."""

    old: list[str]
    kept: list[str]


def history_rows(engine: Engine, run_ids: list[str] | None = None) -> int:
    statement = select(func.count()).select_from(WorkflowTransition)
    if run_ids is not None:
        statement = statement.where(WorkflowTransition.run_id.in_(run_ids))
    with engine.db.reads() as session:
        return int(session.execute(statement).scalar_one())


def make_runs(harness: WorkflowHarness, finished: int = 3) -> Runs:
    """``finished`` old runs (succeeded, failed, cancelled in turn); then, a month and a
    day later, a running and a paused run started back then, and a recent succeeded one."""
    engine = harness.engine
    running = engine.start("approval").id  # polls for ever: running, never finished
    paused = engine.pause(engine.start("pipeline").id).id
    old: list[str] = []
    for n in range(finished):
        kind = n % 3
        params = {"permanent": "fetching"} if kind == 1 else {}
        run = engine.start("pipeline", params).id
        if kind == 2:
            engine.cancel(run)
        else:
            harness.run(run)
        old.append(run)
    harness.clock.advance(MONTH + timedelta(days=1))
    recent = engine.start("pipeline").id
    harness.run(recent)
    assert {engine.get(r).status for r in old} == {"succeeded", "failed", "cancelled"}
    assert engine.get(running).status == "running"
    return Runs(old, [running, paused, recent])


def test_purge_deletes_only_finished_old_runs_and_their_history(
    harness: WorkflowHarness,
) -> None:
    """Old succeeded, failed and cancelled runs go with their history, one batch each;
    a running and a paused run as old, and a recent finished run, stay whole."""
    runs = make_runs(harness)
    engine = harness.engine
    old_history = history_rows(engine, runs.old)
    kept_history = {run: len(engine.history(run)) for run in runs.kept}
    result = engine.purge(MONTH, batch=1)
    assert (result.runs, result.history, result.batches) == (3, old_history, 3)
    assert result.cutoff == harness.clock.now() - MONTH
    for run in runs.old:
        with pytest.raises(RunNotFoundError):
            engine.get(run)
    assert history_rows(engine, runs.old) == 0
    assert {run: len(engine.history(run)) for run in runs.kept} == kept_history
    assert engine.purge(MONTH).runs == 0


def test_dry_run_counts_and_deletes_nothing(harness: WorkflowHarness) -> None:
    """--dry-run reports the runs and history rows a purge would delete, and keeps them."""
    runs = make_runs(harness)
    before = history_rows(harness.engine)
    result = harness.engine.purge(MONTH, dry_run=True)
    assert (result.runs, result.history, result.dry_run) == (
        3,
        history_rows(harness.engine, runs.old),
        True,
    )
    assert history_rows(harness.engine) == before


def test_batches_and_one_workflow(harness: WorkflowHarness) -> None:
    """Eleven old runs in batches of four take three batches; --workflow limits the purge."""
    runs = make_runs(harness, finished=11)
    engine = harness.engine
    assert engine.purge(MONTH, workflow="approval").runs == 0
    result = engine.purge(MONTH, batch=4, workflow="pipeline")
    assert (result.runs, result.batches) == (11, 3)
    assert all(engine.get(run) for run in runs.kept)


def test_bad_purge_arguments_are_refused(engine: Engine) -> None:
    """A non-positive age, a batch out of range or an unknown workflow: refused, named."""
    with pytest.raises(
        InvalidParamsError, match=r"older_than datetime\.timedelta\(0\) is not a positive age"
    ):
        engine.purge(timedelta(0))
    with pytest.raises(InvalidParamsError, match="batch 0 is not allowed; use a whole number"):
        engine.purge(MONTH, batch=0)
    with pytest.raises(UnknownWorkflowError, match="unknown workflow 'payroll'"):
        engine.purge(MONTH, workflow="payroll")


def test_the_retention_setting_is_applied_by_relay_rounds(make_engine: EngineFactory) -> None:
    """An engine with retention=30 days deletes old finished runs on its relay round."""
    harness = WorkflowHarness(make_engine(retention=MONTH))
    runs = make_runs(harness)
    harness.engine.relay_round()
    for run in runs.old:
        with pytest.raises(RunNotFoundError):
            harness.engine.get(run)
    assert all(harness.engine.get(run) for run in runs.kept)
    assert harness.engine.metrics.total("retention.purged_runs") == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_run_locked_elsewhere_is_skipped_not_waited_for(harness: WorkflowHarness) -> None:
    """A finished run another transaction holds is skipped (SKIP LOCKED); the purge goes on
    without waiting and takes it on a later pass."""
    runs = make_runs(harness)
    other = create_engine(harness.engine.settings.database_url)
    with other.connect() as connection, connection.begin():
        connection.execute(
            text("SELECT id FROM workflow_runs WHERE id = :id FOR UPDATE"), {"id": runs.old[0]}
        )
        assert harness.engine.purge(MONTH).runs == 2
        assert harness.engine.get(runs.old[0]).finished
    assert harness.engine.purge(MONTH).runs == 1
    other.dispose()
