"""Child runs: started in the step's transaction and keyed by it, joined where the last
one finishes (also while the parent is paused), and stopped by the parent's policy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from statewright import (
    DefinitionError,
    Engine,
    InMemoryMetrics,
    InvalidParamsError,
    StepContext,
    Workflow,
    step,
)
from statewright.joins import Map
from statewright.models import WorkflowRun
from statewright.testing import WorkflowHarness
from tests.child_workflows import WORKFLOWS
from tests.conftest import EngineFactory


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine(WORKFLOWS)


def lines(engine: Engine, run_id: str) -> list[str]:
    return [f"{h.from_state or ''} --{h.trigger}--> {h.to_state}" for h in engine.history(run_id)]


def child_runs(engine: Engine) -> int:
    with engine.db.reads() as session:
        found: int = session.execute(
            select(func.count()).where(WorkflowRun.workflow == "child")
        ).scalar_one()
        return found


def pending(engine: Engine, run_id: str) -> int:
    with engine.db.reads() as session:
        run = session.get(WorkflowRun, run_id)
        assert run is not None
        return run.children_pending


def joined(engine: Engine, run_id: str) -> dict[str, Any]:
    children: dict[str, Any] = engine.get(run_id).context["children"]
    return children


def test_children_are_joined_with_their_status_and_result(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """The join step runs once, after every child finished, and sees each one's status,
    result (its context) and failure reason; a failed child does not fail the parent."""
    run = engine.start("parent", {"children": 3, "fail": 1})
    assert harness.run(run.id).status == "succeeded"
    assert joined(engine, run.id) == {
        "c0": {"status": "succeeded", "doubled": 0, "reason": None},
        "c1": {"status": "failed", "doubled": None, "reason": "child 1 cannot work"},
        "c2": {"status": "succeeded", "doubled": 4, "reason": None},
    }
    assert lines(engine, run.id) == [
        " --start--> spawning",
        "spawning --spawned--> joining",
        "joining --joined--> done",
    ]
    assert metrics.total("join.released") == 1
    assert pending(engine, run.id) == 0


def test_parent_and_child_link_to_each_other(engine: Engine, harness: WorkflowHarness) -> None:
    """A child's first history row names its parent; the engine answers both ways."""
    run = engine.start("parent", {"children": 1})
    harness.run(run.id)
    [child] = engine.children(run.id)
    assert child.run_id is not None
    first = engine.history(child.run_id)[0]
    assert first.detail == {"parent": run.id, "parent_state": "spawning", "child": "c0"}
    link = engine.parent(child.run_id)
    assert link is not None
    assert (link.run_id, link.state, link.key) == (run.id, "spawning", "c0")
    assert engine.parent(run.id) is None


def test_a_retried_parent_step_starts_no_second_child(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A step that started its children and then failed rolls them back with it: its
    retry starts each child once, and the parent counts each once."""
    run = engine.start("parent", {"children": 2, "crash_attempts": 2})
    info = harness.run(run.id)
    assert info.status == "succeeded"
    assert [h.trigger for h in engine.history(run.id)].count("retry") == 2
    assert child_runs(engine) == 2
    assert sorted(joined(engine, run.id)) == ["c0", "c1"]


def test_a_polling_step_asking_again_gets_the_same_child(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The child key is the run, the visit and the key: a step that polls and asks for the
    same children again on each visit gets the ones it started the first time."""
    run = engine.start("parent", {"children": 2, "polls": 2})
    assert harness.run(run.id).status == "succeeded"
    assert [h.polls for h in engine.history(run.id) if h.trigger == "poll"] == [2]
    assert child_runs(engine) == 2
    assert pending(engine, run.id) == 0


def test_child_finishing_while_the_parent_is_paused_joins_on_resume(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The last child finishing while its parent is paused dispatches nothing; resuming
    the parent runs its join at once."""
    run = engine.start("parent", {"children": 2, "hold": [0]})
    harness.run_all()
    assert (engine.get(run.id).state, pending(engine, run.id)) == ("joining", 1)
    assert not harness.queue.messages
    assert engine.pause(run.id).status == "paused"
    held = next(c for c in engine.children(run.id) if c.key == "c0")
    assert held.run_id is not None
    engine.signal(held.run_id, "go")
    harness.run_all()
    assert engine.get(held.run_id).status == "succeeded"
    assert (engine.get(run.id).status, pending(engine, run.id)) == ("paused", 0)
    engine.resume(run.id)
    assert harness.run(run.id).status == "succeeded"
    assert joined(engine, run.id)["c0"]["status"] == "succeeded"


def test_pausing_a_waiting_parent_holds_its_join_until_resume(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A parent paused and resumed while its children still run keeps waiting in its join
    state with no message; the last child then dispatches the join once."""
    run = engine.start("parent", {"children": 1, "hold": [0]})
    harness.run_all()
    engine.pause(run.id)
    engine.resume(run.id)
    assert not harness.queue.messages
    assert engine.waiting(run.id).due_at is None
    [held] = engine.children(run.id)
    assert held.run_id is not None
    engine.signal(held.run_id, "go")
    assert harness.run(run.id).status == "succeeded"
    assert lines(engine, run.id)[-1] == "joining --joined--> done"


@pytest.mark.parametrize(
    ("workflow", "operation", "expected"),
    [
        ("parent", "cancel", "cancelled"),
        ("parent", "abort", "cancelled"),
        ("aborting_parent", "cancel", "failed"),
        ("aborting_parent", "abort", "failed"),
        ("leaving_parent", "cancel", "running"),
        ("leaving_parent", "abort", "running"),
    ],
)
def test_stopping_the_parent_applies_its_child_policy(
    engine: Engine, harness: WorkflowHarness, workflow: str, operation: str, expected: str
) -> None:
    """Cancelling or aborting a parent whose children still run cancels them, aborts them
    (failed, naming the parent), or leaves them running, as its workflow declares."""
    run = engine.start(workflow, {"children": 3, "hold": [0, 1, 2]})
    harness.run_all()
    assert engine.get(run.id).state == "joining"
    getattr(engine, operation)(run.id)
    harness.run_all()
    children = engine.children(run.id)
    statuses = {engine.get(c.run_id).status for c in children if c.run_id}
    assert statuses == {expected}
    if expected == "failed":
        reasons = {engine.get(c.run_id).failure_reason for c in children if c.run_id}
        verb = "cancelled" if operation == "cancel" else "aborted"
        assert reasons == {f"Its parent run {run.id} was {verb}"}
    assert engine.get(run.id).status == ("cancelled" if operation == "cancel" else "failed")


def test_join_state_without_a_step_is_refused() -> None:
    """A join state must have a @step (it runs when the children are done)."""
    with pytest.raises(DefinitionError, match="join state 'joining' needs a @step handler"):

        class NoJoinStep(Workflow):
            name = "no_join_step"
            transitions = [("go", "start", "joining"), ("done", "joining", "end")]
            terminal = ["end", "joining"]
            joins = ["joining"]

            @step(initial=True)
            def start(self, ctx: StepContext) -> str:
                return "go"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"each": "one", "workflow": "child"}, "exactly one of each= .* and workflow="),
        ({"each": "one", "concurrency": 0}, r"concurrency=\.\.\.\) must be a whole number"),
        ({"each": "one", "tolerate": "five"}, "percentage such as '5%'; got 'five'"),
        ({"each": "one", "tolerate": -1}, "0 or more"),
        ({"each": "one", "attempts": 0}, "attempts"),
    ],
)
def test_bad_map_options_are_refused(options: dict[str, Any], message: str) -> None:
    """Map(...) refuses both or neither item kinds, a bound below 1 and a bad tolerance."""
    with pytest.raises(DefinitionError, match=message):
        Map(items="page", on_done="mapped", **options)


def test_map_declarations_are_checked_against_the_workflow() -> None:
    """A Map's triggers must leave its state, and its methods must exist."""
    with pytest.raises(DefinitionError, match="names each='missing', which is not a method"):

        class NoMethod(Workflow):
            name = "no_method"
            transitions = [("go", "start", "mapping"), ("mapped", "mapping", "end")]
            terminal = ["end"]
            maps = {"mapping": Map(items="start", each="missing", on_done="mapped")}

            @step(initial=True)
            def start(self, ctx: StepContext) -> str:
                return "go"

    with pytest.raises(DefinitionError, match="takes trigger 'failed_many', which is not"):

        class NoTrigger(Workflow):
            name = "no_trigger"
            transitions = [("go", "start", "mapping"), ("mapped", "mapping", "end")]
            terminal = ["end"]
            maps = {
                "mapping": Map(
                    items="start", each="start", on_done="mapped", on_failed="failed_many"
                )
            }

            @step(initial=True)
            def start(self, ctx: StepContext) -> str:
                return "go"


def test_an_unknown_child_policy_is_refused() -> None:
    """child_policy must be cancel, abort or leave."""
    with pytest.raises(DefinitionError, match="child_policy 'kill' is not allowed; allowed:"):

        class Killer(Workflow):
            name = "killer"
            transitions = [("go", "start", "end")]
            terminal = ["end"]
            child_policy = "kill"

            @step(initial=True)
            def start(self, ctx: StepContext) -> str:
                return "go"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bad_child_key_fails_the_step_with_a_clear_reason(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A child key that is empty or too long is refused, naming it; nothing starts."""
    run = engine.start("parent", {"children": 1})
    claimed = harness.claim_next()
    with engine.db.transaction() as session:
        ctx = StepContext.for_claim(
            claimed.claim, session, engine.clock.now(), None, engine.child_runs
        )
        for bad in ("", "k" * 101):
            with pytest.raises(InvalidParamsError, match=f"child key '{bad}' is not allowed"):
                ctx.start_child("child", {}, key=bad)
    assert child_runs(engine) == 0
    assert engine.get(run.id).state == "spawning"
