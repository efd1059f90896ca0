"""Run deadlines: declared by a workflow or given at start, a durable timer that takes a
declared trigger or fails the run, and fences off a step running when it passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import select

from statewright import (
    DefinitionError,
    Engine,
    InMemoryMetrics,
    InvalidParamsError,
    Poll,
    StepContext,
    Workflow,
    step,
)
from statewright.models.engine import OutboxMessage, WorkflowRun
from statewright.testing import WorkflowHarness
from tests.sample_workflows import WORKFLOWS, effect_counts


class Bounded(Workflow):
    """One long poll, bounded by a workflow deadline of an hour that fails the run."""

    name = "bounded"
    transitions = [("ready", "polling", "done")]
    terminal = ["done"]
    deadline = timedelta(hours=1)
    deadline_reason = "The work was not done within the hour"

    @step(initial=True)
    def polling(self, ctx: StepContext) -> Literal["ready"] | Poll:
        return Poll(after=600)


def lines(engine: Engine, run_id: str) -> list[str]:
    return [f"{h.from_state or ''} --{h.trigger}--> {h.to_state}" for h in engine.history(run_id)]


def runs_in_db(engine: Engine) -> int:
    with engine.db.sessions() as session:
        return len(session.execute(select(WorkflowRun.id)).all())


def test_deadline_takes_the_declared_trigger_while_waiting(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A deadline that passes while the run waits takes 'timed_out', before the timeout."""
    run = engine.start("review", {}, deadline=timedelta(hours=1))
    assert run.deadline_at == harness.clock.now() + timedelta(hours=1)
    done = harness.run(run.id)
    assert (done.status, done.state) == ("succeeded", "timed_out")
    last = engine.history(run.id)[-1]
    assert (last.from_state, last.trigger, last.at) == ("awaiting", "timed_out", run.deadline_at)
    assert last.detail == {"deadline": run.deadline_at.isoformat(), "step_was_running": False}
    assert metrics.total("run.deadline_passed", workflow="review") == 1


def test_deadline_fails_the_run_where_no_trigger_is_declared(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Passing in a state with no deadline trigger (retrying 'asking') fails the run."""
    run = engine.start("review", {"fail": {"asking": 3}}, deadline=1.0)
    failed = harness.run(run.id)
    assert (failed.status, failed.state) == ("failed", "asking")
    assert failed.failure_reason == "The review took too long"
    assert failed.failure_detail is not None
    assert failed.failure_detail["error_type"] == "DeadlineExceeded"
    assert lines(engine, run.id)[-1] == "asking --deadline--> asking"


def test_workflow_deadline_fails_a_polling_run_and_an_earlier_start_deadline_wins(
    make_engine: Any,
) -> None:
    """A workflow's own deadline applies to every run; a start deadline may shorten it."""
    engine = make_engine([*WORKFLOWS, Bounded])
    harness = WorkflowHarness(engine)
    now = harness.clock.now()
    default = engine.start("bounded")
    shorter = engine.start("bounded", deadline=now + timedelta(minutes=5))
    longer = engine.start("bounded", deadline=timedelta(days=2))
    assert default.deadline_at == longer.deadline_at == now + timedelta(hours=1)
    assert shorter.deadline_at == now + timedelta(minutes=5)
    failed = harness.run(default.id)
    assert failed.failure_reason == "The work was not done within the hour"
    assert failed.finished_at == now + timedelta(hours=1)
    assert [h.trigger for h in engine.history(default.id)] == ["start", "poll", "deadline"]


def test_a_deadline_passing_while_a_step_runs_fences_it_off(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """The deadline moves the run while 'checking' runs; the step's completion is fenced
    off and its domain write rolled back."""
    run = engine.start("review", {}, deadline=timedelta(hours=1))
    harness.step()
    engine.signal(run.id, "submitted", {"files": ["a"]})
    running = harness.claim_next()
    harness.clock.advance(timedelta(hours=2))
    harness.step()  # the deadline timer
    moved = engine.get(run.id)
    assert (moved.status, moved.state) == ("succeeded", "timed_out")
    running.finish()
    assert engine.get(run.id).state == "timed_out"
    with engine.db.sessions() as session:
        assert effect_counts(session, run.id) == {"signal:submitted": 1}
    assert engine.history(run.id)[-1].detail == {
        "deadline": moved.deadline_at.isoformat() if moved.deadline_at else None,
        "step_was_running": True,
    }
    assert metrics.total("step.dropped", reason="fenced") == 1


def test_a_deadline_outranks_a_pause(engine: Engine, harness: WorkflowHarness) -> None:
    """A paused run keeps its deadline timer; when it passes, the run resumes to take
    the deadline trigger."""
    run = engine.start("review", {}, deadline=timedelta(hours=1))
    harness.step()
    engine.pause(run.id)
    with engine.db.sessions() as session:
        rows = session.execute(select(OutboxMessage.task_name)).scalars().all()
    assert rows == ["statewright.deadline"]
    done = harness.run(run.id)  # paused: returns at once
    assert done.status == "paused"
    harness.clock.advance(timedelta(hours=1))
    harness.run_all()
    assert engine.get(run.id).state == "timed_out"
    assert lines(engine, run.id)[-3:] == [
        "awaiting --pause--> awaiting",
        "awaiting --resume--> awaiting",
        "awaiting --timed_out--> timed_out",
    ]


def test_a_finished_run_drops_its_deadline_timer(engine: Engine, harness: WorkflowHarness) -> None:
    """A run that finishes before its deadline leaves no timer behind."""
    run = engine.start("review", {}, deadline=timedelta(days=30))
    harness.step()
    engine.signal(run.id, "withdrawn")
    with engine.db.sessions() as session:
        assert session.execute(select(OutboxMessage)).first() is None


@pytest.mark.parametrize(
    "deadline",
    [
        0,
        -5,
        timedelta(0),
        "soon",
        True,
        float("inf"),
        datetime(2031, 1, 1),
        datetime(2000, 1, 1, tzinfo=UTC),
    ],
    ids=["zero", "negative", "zero-span", "text", "bool", "infinite", "naive", "past"],
)
def test_a_bad_start_deadline_is_refused(engine: Engine, deadline: Any) -> None:
    """A deadline that is not a positive span or a future aware moment is refused, and
    nothing is started."""
    with pytest.raises(InvalidParamsError, match=r"deadline .* is not allowed; give a positive"):
        engine.start("review", {}, deadline=deadline)
    assert runs_in_db(engine) == 0


def test_deadline_declarations_are_checked() -> None:
    """An undeclared deadline trigger or a non-positive deadline is refused at declaration."""
    with pytest.raises(DefinitionError, match="on_deadline 'late' is not a declared trigger"):
        type("Late", (Bounded,), {"name": "late", "on_deadline": "late"})
    with pytest.raises(DefinitionError, match="deadline must be positive"):
        type("Never", (Bounded,), {"name": "never", "deadline": timedelta(0)})
