"""A Map's time_limit: checked when the workflow is declared, the Celery limits of its
items' task, the lease an item's delivery gets (a lost worker's item is sent again after
the Map's limit, not the engine's default), and where diagrams and `runs show` say it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from statewright import DefinitionError, Engine, StepContext, Workflow, step
from statewright.cli.family import family_json
from statewright.diagrams import mermaid
from statewright.instrumentation import HARD_LIMIT_MARGIN
from statewright.joins import Map
from statewright.models import OutboxMessage, WorkflowChild
from statewright.testing import WorkflowHarness
from tests.child_workflows import WORKFLOWS, TimedMap
from tests.conftest import EngineFactory
from tests.sample_workflows import effect_counts

TIMED_TASK = "statewright.map_item.timed_map.mapping"


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine(WORKFLOWS)


def declare(**options: Any) -> None:
    """Declare a workflow whose Map state ``mapping`` has ``options``."""

    class Declared(Workflow):
        name = "declared"
        transitions = [("go", "start", "mapping"), ("mapped", "mapping", "end")]
        terminal = ["end"]
        maps = {"mapping": Map(items="start", on_done="mapped", **options)}

        @step(initial=True)
        def start(self, ctx: StepContext) -> str:
            return "go"


@pytest.mark.parametrize("bad", [0, -5, "30", True, float("nan"), float("inf"), [30]])
def test_a_bad_time_limit_is_refused_naming_the_state_and_the_value(bad: object) -> None:
    """A time_limit that is not a positive number of seconds is refused at declaration,
    naming the workflow, the Map's state and the value given."""
    wanted = (
        f"workflow 'declared': Map state 'mapping' has time_limit={bad!r}; it must be a "
        "positive number of seconds"
    )
    with pytest.raises(DefinitionError, match=re.escape(wanted)):
        declare(each="start", time_limit=bad)


def test_a_time_limit_on_a_map_of_child_runs_is_refused() -> None:
    """A Map of child runs has no time limit of its own: declaring one says why and
    where the limit belongs."""
    wanted = (
        "workflow 'declared': Map state 'mapping' has time_limit=30, but its items are child "
        "runs of 'child': a child run's steps have their own time limits (set them on its "
        "workflow); a Map's time_limit bounds each call of each= only"
    )
    with pytest.raises(DefinitionError, match=re.escape(wanted)):
        declare(workflow="child", time_limit=30)


def test_items_run_as_a_task_with_the_maps_limits(engine: Engine, harness: WorkflowHarness) -> None:
    """The Map's items are sent as its own task, whose soft limit is the Map's time limit
    and whose hard limit follows a margin later; a Map without one keeps the shared task."""
    task = engine.celery.tasks[TIMED_TASK]
    assert (task.soft_time_limit, task.time_limit) == (2, 2 + HARD_LIMIT_MARGIN)
    run = engine.start("timed_map", {"items": 3})
    harness.run(run.id)
    sent = {d.message.task_name for d in harness.deliveries}
    assert TIMED_TASK in sent
    assert "statewright.map_item" not in sent
    assert engine.get(run.id).state == "done"
    other = engine.start("map_tasks", {"items": 2})
    harness.run(other.id)
    assert "statewright.map_item" in {d.message.task_name for d in harness.deliveries}


def test_an_item_whose_worker_is_lost_is_sent_again_after_the_maps_limit(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A worker takes an item and dies: the item's lease is the Map's time limit plus the
    hard-limit margin and the lease grace, and it is sent again then (not after the
    engine's default limit), runs as attempt 2 and lands its effect once."""
    run = engine.start("timed_map", {"items": 1})
    while not any(m.task_name == TIMED_TASK for m in harness.queue.messages):
        harness.step()
    message = next(m for m in harness.queue.messages if m.task_name == TIMED_TASK)
    harness.queue.messages.remove(message)
    task = engine.celery.tasks[TIMED_TASK]
    taken_at = harness.clock.now()
    delivery = engine.deliveries.claim(  # as the task's own delivery claims it ...
        message.outbox_id, TIMED_TASK, time_limit=task.time_limit, max_attempts=None
    )
    assert delivery is not None  # ... and then its worker dies
    lease = timedelta(seconds=2 + HARD_LIMIT_MARGIN + engine.settings.lease_grace)
    with engine.db.reads() as session:
        row = session.get(OutboxMessage, message.outbox_id)
        assert row is not None
        assert row.not_before == taken_at + lease
    assert harness.run(run.id).state == "done"
    again = next(d for d in harness.deliveries if d.message.outbox_id == message.outbox_id)
    assert again.at == taken_at + lease
    with engine.db.reads() as session:
        assert effect_counts(session, run.id) == {"item-0": 1}
        result = session.execute(
            select(WorkflowChild.result).where(WorkflowChild.parent_run_id == run.id)
        ).scalar_one()
    assert result["attempt"] == 2


def test_diagrams_and_runs_show_say_the_items_time_limit(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A Map with a time limit says so in its diagram and in `runs show --json`; one
    without says nothing in its diagram and has none."""
    assert "at most 4 at a time, pages of 4, each item within 2s, tolerates" in mermaid(
        TimedMap.definition
    )
    timed = engine.start("timed_map", {"items": 1})
    plain = engine.start("map_tasks", {"items": 1})
    harness.run_all()
    assert [m["item_time_limit"] for m in family_json(engine, timed.id)["maps"]] == [2]
    assert [m["item_time_limit"] for m in family_json(engine, plain.id)["maps"]] == [None]
