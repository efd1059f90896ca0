"""Map: items start in pages under the concurrency bound, the last item's commit joins
the parent exactly once, and the tolerance decides between on_done and on_failed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from statewright import Engine, InMemoryMetrics
from statewright.models import WorkflowChild
from statewright.testing import WorkflowHarness
from tests.child_workflows import WORKFLOWS
from tests.conftest import EngineFactory
from tests.sample_workflows import effect_counts


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine(WORKFLOWS)


def lines(engine: Engine, run_id: str) -> list[str]:
    return [f"{h.from_state or ''} --{h.trigger}--> {h.to_state}" for h in engine.history(run_id)]


def running_items(engine: Engine, run_id: str) -> int:
    with engine.db.reads() as session:
        found: int = session.execute(
            select(func.count()).where(
                WorkflowChild.parent_run_id == run_id, WorkflowChild.status == "running"
            )
        ).scalar_one()
        return found


def test_items_start_in_pages_under_the_bound_and_join_once(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """No more than `concurrency` items are ever in flight, none is started twice, each
    item's effect happens once, and the parent moves once, when the last one finishes."""
    run = engine.start("map_tasks", {"items": 60})
    while harness.step() is not None:
        for found in engine.maps(run.id):
            assert found.in_flight <= found.concurrency == 8
        assert running_items(engine, run.id) <= 8
    assert engine.get(run.id).status == "succeeded"
    [done] = engine.maps(run.id)
    assert (done.started, done.done, done.failed, done.exhausted) == (60, 60, 0, True)
    with engine.db.reads() as session:
        effects = effect_counts(session, run.id)
    assert effects == {f"item-{n}": 1 for n in range(60)}
    assert lines(engine, run.id) == [
        " --start--> preparing",
        "preparing --prepared--> mapping",
        "mapping --mapped--> done",
    ]
    assert metrics.total("map.joined") == 1
    assert metrics.total("join.released") == 1
    assert engine.get(run.id).context == {"maps": {"mapping": {"items": 60, "failed": 0}}}


def test_failures_within_the_tolerance_advance(engine: Engine, harness: WorkflowHarness) -> None:
    """3 failed items of 50 is within 10%: the parent takes on_done; each failed item is
    listed with its error after its attempts were spent."""
    run = engine.start("map_tasks", {"items": 50, "fail_every": 20})
    assert harness.run(run.id).state == "done"
    failed = engine.failed_items(run.id)
    assert [(f.position, f.reason, f.attempts) for f in failed] == [
        (n, f"ValueError: item {n} is not allowed", 2) for n in (0, 20, 40)
    ]
    assert [f.position for f in engine.failed_items(run.id, after=0, limit=1)] == [20]


def test_failures_past_the_tolerance_take_on_failed(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """6 failed items of 50 is past 10%: the parent takes on_failed, once."""
    run = engine.start("map_tasks", {"items": 50, "fail_every": 9})
    info = harness.run(run.id)
    assert (info.state, info.status) == ("rejected", "succeeded")
    assert len(engine.failed_items(run.id)) == 6
    assert lines(engine, run.id)[-1] == "mapping --too_many_failed--> rejected"


def test_failures_past_the_tolerance_without_on_failed_fail_the_run(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """With no on_failed, a Map past its tolerance fails its run, naming the first items."""
    run = engine.start("strict_map", {"items": 7, "fail_every": 5})
    info = harness.run(run.id)
    assert info.status == "failed"
    assert info.failure_reason == (
        "2 of 7 items of 'mapping' failed, past the tolerance (at most 0 failed item(s)); "
        "first: item 0: ValueError: item 0 is not allowed; item 5: ValueError: item 5 is "
        "not allowed"
    )


def test_an_empty_source_moves_on_at_once(engine: Engine, harness: WorkflowHarness) -> None:
    """A Map whose source gives no items joins as soon as the source says so."""
    run = engine.start("map_tasks", {"items": 0})
    assert harness.run(run.id).state == "done"
    assert engine.maps(run.id)[0].started == 0


def test_map_of_child_runs_counts_each_child(engine: Engine, harness: WorkflowHarness) -> None:
    """Items run as child runs, at most 3 at a time; a failed child is a failed item with
    its run's reason, and one is tolerated."""
    run = engine.start("map_runs", {"items": 7, "fail": [3]})
    while harness.step() is not None:
        assert all(m.in_flight <= 3 for m in engine.maps(run.id))
    assert engine.get(run.id).state == "done"
    [failed] = engine.failed_items(run.id)
    assert failed.run_id is not None
    assert (failed.position, failed.reason) == (3, "child 3 cannot work")
    parent = engine.parent(failed.run_id)
    assert parent is not None
    assert (parent.run_id, parent.position) == (run.id, 3)


def test_a_duplicate_item_message_is_counted_once(engine: Engine, harness: WorkflowHarness) -> None:
    """A task item delivered twice runs and counts once: the copy is dropped."""
    run = engine.start("map_tasks", {"items": 3})
    while not any(m.task_name == "statewright.map_item" for m in harness.queue.messages):
        harness.step()
    item = next(m for m in harness.queue.messages if m.task_name == "statewright.map_item")
    harness.deliver(item)
    harness.deliver(item)
    assert harness.run(run.id).state == "done"
    assert engine.maps(run.id)[0].done == 3
    with engine.db.reads() as session:
        assert set(effect_counts(session, run.id).values()) == {1}


def test_a_paused_parent_starts_no_items_until_resumed(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Pausing a mapping parent lets the items in flight finish but starts no more; on
    resume the Map goes on and joins once."""
    run = engine.start("map_runs", {"items": 8})
    while not engine.maps(run.id) or engine.maps(run.id)[0].started < 3:
        harness.step()
    engine.pause(run.id)
    harness.run_all()
    [paused] = engine.maps(run.id)
    assert (paused.started, paused.done) == (3, 3)
    engine.resume(run.id)
    assert harness.run(run.id).state == "done"
    assert engine.maps(run.id)[0].done == 8
    assert lines(engine, run.id)[-1] == "mapping --mapped--> done"


def test_a_paused_parent_whose_last_item_finished_joins_on_resume(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The last item finishing while the parent is paused dispatches nothing; the resume
    runs the Map's step at once."""
    run = engine.start("map_runs", {"items": 2})
    while not engine.maps(run.id) or engine.maps(run.id)[0].started < 2:
        harness.step()
    engine.pause(run.id)
    harness.run_all()
    assert engine.maps(run.id)[0].done == 2
    assert engine.get(run.id).status == "paused"
    engine.resume(run.id)
    assert harness.run(run.id).state == "done"


def test_cancelling_a_mapping_parent_cancels_its_item_runs(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The cancel policy cancels the item runs in flight (each counted as a failed item),
    and no more items start."""
    run = engine.start("map_runs", {"items": 8, "hold": [0, 1, 2]})
    harness.run_all()
    assert engine.maps(run.id)[0].in_flight == 3
    engine.cancel(run.id)
    harness.run_all()
    [stopped] = engine.maps(run.id)
    assert stopped.started == 3
    assert stopped.done == 3
    assert engine.get(run.id).status == "cancelled"
    stopped_items = engine.failed_items(run.id)
    assert stopped_items
    assert {engine.get(f.run_id or "").status for f in stopped_items} == {"cancelled"}


def test_diagrams_show_joins_and_maps() -> None:
    """A join state names its child policy; a Map state what it maps over, how widely
    and what it tolerates, and its two ways out are marked."""
    from statewright.diagrams import mermaid
    from tests.child_workflows import AbortingParent, MapRuns, MapTasks

    joining = mermaid(AbortingParent.definition)
    assert "joins its children (on cancel or abort: abort)" in joining
    mapping = mermaid(MapTasks.definition)
    assert "Map over page as one tasks, at most 8 at a time, pages of 5" in mapping
    assert "tolerates at most 10% of the items failed" in mapping
    assert "mapping --> done: mapped (last item, within tolerance)" in mapping
    assert "mapping --> rejected: too_many_failed (last item, past tolerance)" in mapping
    assert "Map over page as child runs" in mermaid(MapRuns.definition)


def test_a_failing_source_is_tried_again_from_where_it_was(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The fill whose source fails mid-way is tried again; the pages that committed stay
    started, so every item runs once and the Map joins once."""
    run = engine.start("flaky_source", {"items": 40, "break_at": 20})
    assert harness.run(run.id).state == "done"
    [done] = engine.maps(run.id)
    assert (done.started, done.done) == (40, 40)
    with engine.db.reads() as session:
        assert effect_counts(session, run.id) == {f"item-{n}": 1 for n in range(40)}


def test_a_source_that_keeps_failing_fails_the_run(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """After its attempts, a fill that cannot list items fails the Map's run, saying why."""
    run = engine.start("flaky_source", {"items": 40, "break_at": 20, "always": True})
    info = harness.run(run.id)
    assert info.status == "failed"
    assert info.failure_reason == (
        "The items of 'mapping' could not be listed or started: the source went away at "
        f"{engine.maps(run.id)[0].started}"
    )
    assert engine.maps(run.id)[0].started <= 20


def test_task_items_of_a_cancelled_run_end_without_running(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Task items already dispatched when their run is cancelled end as cancelled, with
    the reason, and their work is not done."""
    run = engine.start("map_tasks", {"items": 20})
    while not any(m.task_name == "statewright.map_item" for m in harness.queue.messages):
        harness.step()
    engine.cancel(run.id)
    harness.run_all()
    stopped = engine.failed_items(run.id)
    assert stopped
    assert {f.reason for f in stopped} == {"its run was cancelled before the item ran"}
    with engine.db.reads() as session:
        assert effect_counts(session, run.id) == {}
