"""The workflow harness: running until a state, and losing or delaying messages."""

from __future__ import annotations

import pytest

from statewright import Engine, TaskMessage
from statewright.errors import UnknownStateError, UnknownTaskError
from statewright.testing import WorkflowHarness
from tests.helpers import effects_of


def test_run_until_stops_when_the_run_reaches_the_state(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """`run(until=...)` returns as the run enters the state, before that state's step runs."""
    run = engine.start("pipeline")
    info = harness.run(run.id, until="storing")
    assert (info.state, info.status) == ("storing", "running")
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1}
    assert harness.run(run.id).status == "succeeded"


def test_run_until_a_terminal_state_returns_the_finished_run(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A terminal state can be the one to run until."""
    run = engine.start("pipeline")
    assert harness.run(run.id, until="done").status == "succeeded"


def test_run_until_refuses_a_state_the_workflow_does_not_have(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A misspelt state is refused at once, naming it and the workflow's states."""
    run = engine.start("pipeline")
    with pytest.raises(UnknownStateError, match=r"no state 'stroing'; its states: 'fetching'"):
        harness.run(run.id, until="stroing")
    assert engine.get(run.id).state == "fetching"  # nothing ran


def test_run_until_fails_when_the_run_ends_without_reaching_the_state(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A run that fails before the state is reached fails the test, naming the state."""
    run = engine.start("pipeline", {"permanent": "transforming"})
    with pytest.raises(
        AssertionError, match=r"failed in state 'transforming'.*did not reach state 'storing'"
    ):
        harness.run(run.id, until="storing")


def test_a_dropped_step_message_is_sent_again(engine: Engine, harness: WorkflowHarness) -> None:
    """A lost step message is recovered by the reaper after the dispatch timeout; the step
    runs once."""
    run = engine.start("pipeline")
    harness.drop("pipeline.transforming")
    assert harness.run(run.id).status == "succeeded"
    assert [m.task_name for m in harness.dropped] == ["pipeline.transforming"]
    assert [h.trigger for h in engine.history(run.id)].count("redispatch") == 1
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}


def test_a_held_message_delivered_late_is_dropped(engine: Engine, harness: WorkflowHarness) -> None:
    """A step message held until the run moved on (its copy ran) does nothing on release."""
    run = engine.start("pipeline")
    harness.hold(lambda message: message.task_name == "pipeline.storing")
    assert harness.run(run.id).status == "succeeded"
    assert [m.task_name for m in harness.held] == ["pipeline.storing"]
    released = harness.release()
    assert [m.task_name for m in released] == ["pipeline.storing"]
    assert harness.held == []
    assert engine.metrics.total("step.dropped") == 1  # type: ignore[attr-defined]
    assert effects_of(engine, run.id)["storing"] == 1


def test_a_held_message_released_in_time_runs_its_step(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A message held while others run, then released before any copy, runs its step."""
    first = engine.start("pipeline")
    second = engine.start("pipeline")
    harness.hold(lambda message: message.kwargs.get("run_id") == first.id)
    ran = harness.step()
    assert ran is not None
    assert ran.kwargs["run_id"] == second.id  # the first run's message was held back
    assert engine.get(first.id).state == "fetching"
    released: list[TaskMessage] = harness.release()
    assert [m.kwargs["run_id"] for m in released] == [first.id]
    assert engine.get(first.id).state == "transforming"
    assert harness.run(first.id).status == "succeeded"
    assert harness.run(second.id).status == "succeeded"


def test_drop_and_hold_refuse_a_task_name_no_task_has(harness: WorkflowHarness) -> None:
    """A rule for a task name that no task has is refused at once, naming it."""
    with pytest.raises(UnknownTaskError, match=r"no task named 'pipeline\.fetch'"):
        harness.drop("pipeline.fetch")
    with pytest.raises(ValueError, match=r"times must be a whole number of at least 1; got 0"):
        harness.hold("pipeline.fetching", times=0)
