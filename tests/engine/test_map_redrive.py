"""Redriving a run that failed in a Map state runs the Map's failed items again, and only
those: succeeded items are kept, each item's effect lands once overall, the counters
move in the redrive's transaction, and the Map step judges the tolerance again."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from statewright import Engine
from statewright.models import WorkflowChild, WorkflowRun
from statewright.testing import WorkflowHarness
from tests.child_workflows import WORKFLOWS
from tests.conftest import EngineFactory
from tests.sample_workflows import effect_counts, record_effect


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine(WORKFLOWS)


def fix(engine: Engine, run_id: str) -> None:
    """Fix the cause of the run's broken items (what their handlers check)."""
    with engine.db.transaction() as session:
        record_effect(session, run_id, "fixed")


def effects(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.reads() as session:
        found = effect_counts(session, run_id)
    found.pop("fixed", None)
    return found


def items(engine: Engine, run_id: str) -> dict[int, tuple[str, int, Any]]:
    """Each item's status, attempts and result, by position."""
    with engine.db.reads() as session:
        rows = session.execute(
            select(WorkflowChild).where(WorkflowChild.parent_run_id == run_id)
        ).scalars()
        return {row.position or 0: (row.status, row.attempts, row.result) for row in rows}


def runs_of(engine: Engine, workflow: str) -> int:
    with engine.db.reads() as session:
        count: int = session.execute(
            select(func.count()).where(WorkflowRun.workflow == workflow)
        ).scalar_one()
        return count


def counters(engine: Engine, run_id: str) -> tuple[int, int, int, int]:
    [found] = engine.maps(run_id)
    return found.started, found.done, found.failed, found.queued


def test_redrive_runs_only_the_failed_task_items_again(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Past its tolerance the run fails; once the cause is fixed, a redrive runs the two
    failed items again (fresh attempts, under the bound) and the run succeeds with every
    item's effect once; the items that succeeded are not run again."""
    run = engine.start("fixable_map", {"items": 9, "broken": [2, 6]})
    failed = harness.run(run.id)
    assert failed.status == "failed"
    assert failed.failure_reason is not None
    assert failed.failure_reason.startswith("2 of 9 items of 'mapping' failed")
    before = items(engine, run.id)
    fix(engine, run.id)
    engine.redrive(run.id)
    assert counters(engine, run.id) == (7, 7, 0, 2)
    assert engine.failed_items(run.id) == []
    while harness.step() is not None:
        assert all(m.in_flight <= 2 for m in engine.maps(run.id))
    done = engine.get(run.id)
    assert (done.status, done.state) == ("succeeded", "done")
    assert effects(engine, run.id) == {f"item-{n}": 1 for n in range(9)}
    assert counters(engine, run.id) == (9, 9, 0, 0)
    after = items(engine, run.id)
    assert {n: after[n] for n in (2, 6)} == {n: ("succeeded", 1, {"attempt": 1}) for n in (2, 6)}
    assert {n: row for n, row in after.items() if n not in (2, 6)} == {
        n: row for n, row in before.items() if n not in (2, 6)
    }
    triggers = [h.trigger for h in engine.history(run.id)]
    assert triggers == ["start", "prepared", "fail", "redrive", "mapped"]


def test_a_redrive_before_the_fix_fails_again_and_a_later_one_succeeds(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A redrive whose items fail again fails the run again with the same count; the next
    redrive after the fix runs them once more and the run succeeds."""
    run = engine.start("fixable_map", {"items": 5, "broken": [0, 4]})
    assert harness.run(run.id).status == "failed"
    engine.redrive(run.id)
    again = harness.run(run.id)
    assert again.status == "failed"
    assert again.failure_reason is not None
    assert again.failure_reason.startswith("2 of 5 items of 'mapping' failed")
    assert counters(engine, run.id) == (5, 5, 2, 0)
    fix(engine, run.id)
    engine.redrive(run.id)
    assert harness.run(run.id).status == "succeeded"
    assert effects(engine, run.id) == {f"item-{n}": 1 for n in range(5)}


def test_task_items_cancelled_with_an_aborted_run_run_on_redrive(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Items that ended as cancelled because their run was aborted mid-Map count as
    failed: the redrive runs them, and the Map goes on to the items never started."""
    run = engine.start("fixable_map", {"items": 6})
    while not any(m.task_name == "statewright.map_item" for m in harness.queue.messages):
        harness.step()
    engine.abort(run.id)
    harness.run_all()
    stopped = engine.failed_items(run.id)
    assert [f.reason for f in stopped] == ["its run was failed before the item ran"] * 2
    engine.redrive(run.id)
    assert harness.run(run.id).status == "succeeded"
    assert effects(engine, run.id) == {f"item-{n}": 1 for n in range(6)}
    assert counters(engine, run.id) == (6, 6, 0, 0)


def test_redrive_redrives_the_failed_item_runs(engine: Engine, harness: WorkflowHarness) -> None:
    """A Map of child runs: the failed children are redriven from their failed step (their
    first step is not repeated), no new child run is started, and the run succeeds."""
    run = engine.start("fixable_runs", {"items": 5, "broken": [1, 4]})
    assert harness.run(run.id).status == "failed"
    broken = {f.position: f.run_id for f in engine.failed_items(run.id)}
    assert sorted(broken) == [1, 4]
    fix(engine, run.id)
    engine.redrive(run.id)
    assert harness.run(run.id).status == "succeeded"
    wanted = {f"{what}-{n}": 1 for n in range(5) for what in ("prepared", "item")}
    assert effects(engine, run.id) == wanted
    assert runs_of(engine, "fixable_child") == 5
    for child in broken.values():
        assert child is not None
        assert engine.get(child).status == "succeeded"
        assert "redrive" in [h.trigger for h in engine.history(child)]


def test_item_runs_cancelled_with_their_parent_get_new_runs_once(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Children cancelled (before they ran) when their parent was aborted cannot be
    redriven: each gets one new run (a fill delivered twice starts no more), and the run
    succeeds with each child's effects once."""
    run = engine.start("fixable_runs", {"items": 4})
    while runs_of(engine, "fixable_child") < 2:
        harness.step()
    engine.abort(run.id)
    stop = next(m for m in harness.queue.messages if m.task_name == "statewright.stop_children")
    harness.deliver(stop)  # the children are cancelled before their first step runs
    harness.run_all()
    cancelled = {f.position: f.run_id for f in engine.failed_items(run.id)}
    assert {engine.get(c or "").status for c in cancelled.values()} == {"cancelled"}
    engine.redrive(run.id)
    fill = next(m for m in harness.queue.messages if m.task_name == "statewright.map_fill")
    harness.deliver(fill)
    harness.deliver(fill)
    assert harness.run(run.id).status == "succeeded"
    assert runs_of(engine, "fixable_child") == 4 + len(cancelled)
    started = items(engine, run.id)
    assert all(status == "succeeded" for status, _, _ in started.values())
    wanted = {f"{what}-{n}": 1 for n in range(4) for what in ("prepared", "item")}
    assert effects(engine, run.id) == wanted
    for position, old in cancelled.items():
        parent = engine.parent(old or "")
        assert parent is None  # the item's link follows its new run
        assert engine.get(old or "").status == "cancelled"
        assert position in started


def test_redriving_a_run_that_failed_outside_its_map_leaves_the_items(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A run failed in its Map state with no failed item (its Map step's worker lost, say)
    runs its Map step again and starts nothing."""
    run = engine.start("fixable_map", {"items": 3})
    harness.run(run.id, until="mapping")
    while engine.maps(run.id) == [] or not engine.maps(run.id)[0].complete:
        harness.step()
    engine.abort(run.id)
    engine.redrive(run.id)
    assert counters(engine, run.id) == (3, 3, 0, 0)
    assert harness.run(run.id).status == "succeeded"
    assert effects(engine, run.id) == {f"item-{n}": 1 for n in range(3)}
