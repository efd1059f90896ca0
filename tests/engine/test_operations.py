"""Operations on runs and their refusals, each with a message naming what was wrong."""

from __future__ import annotations

import pytest

from statewright import (
    Engine,
    IdempotencyConflictError,
    IllegalOperationError,
    InvalidParamsError,
    RunNotFoundError,
    UnknownWorkflowError,
)
from statewright.testing import WorkflowHarness
from tests.sample_workflows import effect_counts


def triggers(engine: Engine, run_id: str) -> list[str]:
    return [h.trigger for h in engine.history(run_id)]


def test_idempotent_start_returns_the_same_run(engine: Engine) -> None:
    """Starting twice with one key returns the first run and starts nothing new."""
    first = engine.start("pipeline", {"n": 1}, idempotency_key="order-42")
    again = engine.start("pipeline", {"n": 1}, idempotency_key="order-42")
    assert again.id == first.id
    assert len(engine.list(workflow="pipeline")) == 1


def test_idempotency_key_with_other_params_is_refused(engine: Engine) -> None:
    """Reusing a key with different params is a conflict, not a silent second run."""
    engine.start("pipeline", {"n": 1}, idempotency_key="order-42")
    with pytest.raises(
        IdempotencyConflictError, match=r"'order-42' already started run .* different params"
    ):
        engine.start("pipeline", {"n": 2}, idempotency_key="order-42")


def test_params_that_are_not_json_are_refused(engine: Engine) -> None:
    """Params that JSON cannot hold are refused naming the bad value; nothing is written."""
    with pytest.raises(InvalidParamsError, match=r"params\['when'\] is a set .*not JSON"):
        engine.start("pipeline", {"when": {1, 2}})
    with pytest.raises(InvalidParamsError, match=r"params must be a JSON object"):
        engine.start("pipeline", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidParamsError, match=r"params\['x'\] is nan"):
        engine.start("pipeline", {"x": float("nan")})
    assert engine.list() == []


def test_unknown_workflow_and_run_are_named(engine: Engine) -> None:
    """Unknown names and ids are refused with what exists."""
    with pytest.raises(
        UnknownWorkflowError, match=r"unknown workflow 'nope'; registered workflows: 'approval'"
    ):
        engine.start("nope")
    for operation in (
        engine.get,
        engine.history,
        engine.pause,
        engine.resume,
        engine.cancel,
        engine.abort,
        engine.redrive,
    ):
        with pytest.raises(RunNotFoundError, match=r"no run with id 'missing'"):
            operation("missing")


def test_list_filters_and_validates(engine: Engine, harness: WorkflowHarness) -> None:
    """List filters by workflow and status and refuses unknown statuses."""
    done = engine.start("pipeline")
    harness.run(done.id)
    waiting = engine.start("approval")
    assert [r.id for r in engine.list(status="succeeded")] == [done.id]
    assert [r.id for r in engine.list(workflow="approval")] == [waiting.id]
    with pytest.raises(InvalidParamsError, match=r"unknown status 'stuck'; allowed: running"):
        engine.list(status="stuck")


def test_pause_now_and_resume_at_the_exact_step(engine: Engine, harness: WorkflowHarness) -> None:
    """A paused run stops before its next step; resume runs that very step."""
    run = engine.start("pipeline")
    harness.step()
    paused = engine.pause(run.id)
    assert paused.status == "paused"
    assert paused.state == "transforming"
    assert harness.run(run.id).status == "paused"  # the queued step is fenced off
    resumed = engine.resume(run.id)
    assert resumed.status == "running"
    assert harness.run(run.id).status == "succeeded"
    assert triggers(engine, run.id) == [
        "start",
        "fetched",
        "pause",
        "resume",
        "transformed",
        "stored",
    ]
    with engine.db.sessions() as session:
        assert effect_counts(session, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}


def test_pause_while_a_step_runs_applies_at_the_next_boundary(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Pausing during a step lets it finish and stops the run before the next one."""
    run = engine.start("pipeline")
    running = harness.claim_next()
    assert engine.pause(run.id).pause_requested
    running.finish()
    assert engine.get(run.id).status == "running"
    paused = harness.run(run.id)
    assert (paused.status, paused.state) == ("paused", "transforming")


def test_pause_at_a_state_ahead(engine: Engine, harness: WorkflowHarness) -> None:
    """A pause scheduled for a later state applies when that state's step is claimed."""
    run = engine.start("pipeline")
    assert engine.pause(run.id, at="storing").pause_at == "storing"
    paused = harness.run(run.id)
    assert (paused.status, paused.state, paused.pause_at) == ("paused", "storing", None)
    engine.resume(run.id)
    assert harness.run(run.id).status == "succeeded"


def test_start_paused_at_a_state(engine: Engine, harness: WorkflowHarness) -> None:
    """A run can be started with a pause already scheduled."""
    run = engine.start("pipeline", pause_at="transforming")
    assert harness.run(run.id).state == "transforming"
    assert engine.get(run.id).status == "paused"


def test_pause_refusals(engine: Engine, harness: WorkflowHarness) -> None:
    """Pausing at a passed or unknown state, or pausing a finished run, is refused."""
    run = engine.start("pipeline")
    harness.step()
    harness.step()
    with pytest.raises(
        IllegalOperationError,
        match=(
            r"cannot pause at 'fetching': run \w+ is in 'storing', and 'fetching' is not ahead "
            r"of it; states ahead: storing"
        ),
    ):
        engine.pause(run.id, at="fetching")
    with pytest.raises(
        InvalidParamsError, match=r"cannot pause at 'dreaming': unknown state.*ahead: storing"
    ):
        engine.pause(run.id, at="dreaming")
    harness.run(run.id)
    with pytest.raises(
        IllegalOperationError, match=r"is succeeded \(it has finished\); only a run that is running"
    ):
        engine.pause(run.id)


def test_resume_of_a_running_run_is_refused(engine: Engine) -> None:
    """Only paused runs resume."""
    run = engine.start("pipeline")
    with pytest.raises(
        IllegalOperationError, match=r"run \w+ is running; only a run that is paused can be resumed"
    ):
        engine.resume(run.id)


def test_cancel_waiting_run_at_once(engine: Engine, harness: WorkflowHarness) -> None:
    """A run whose step is not running is cancelled at once and never runs again."""
    run = engine.start("approval")
    harness.step()
    cancelled = engine.cancel(run.id)
    assert cancelled.status == "cancelled"
    harness.run_all()  # whatever was queued for the run is dropped
    assert engine.get(run.id).status == "cancelled"
    assert triggers(engine, run.id)[-1] == "cancel"


def test_cancel_during_a_step_is_orderly(engine: Engine, harness: WorkflowHarness) -> None:
    """Cancelling a running step lets it commit and cancels at the next boundary."""
    run = engine.start("pipeline")
    running = harness.claim_next()
    assert engine.cancel(run.id).cancel_requested
    running.finish()
    cancelled = harness.run(run.id)
    assert (cancelled.status, cancelled.state) == ("cancelled", "transforming")
    assert triggers(engine, run.id) == ["start", "fetched", "cancel"]


def test_abort_fences_off_the_running_step(engine: Engine, harness: WorkflowHarness) -> None:
    """Abort fails the run now; the running step's completion and writes are discarded."""
    run = engine.start("pipeline")
    running = harness.claim_next()
    aborted = engine.abort(run.id)
    assert (aborted.status, aborted.failure_reason) == ("failed", "Aborted by an operator")
    running.finish()
    assert engine.get(run.id).state == "fetching"
    assert triggers(engine, run.id) == ["start", "abort"]


def test_redrive_continues_from_the_failed_state(engine: Engine, harness: WorkflowHarness) -> None:
    """A failed run continues at its failed state with a fresh attempt budget."""
    run = engine.start("pipeline", {"fail": {"storing": 3}})
    assert harness.run(run.id).status == "failed"
    with pytest.raises(IllegalOperationError, match=r"only a run that is failed can be redriven"):
        engine.redrive(engine.start("approval").id)
    redriven = engine.redrive(run.id)
    assert (redriven.status, redriven.attempt, redriven.failure_reason) == ("running", 0, None)
    # the step fails on attempts 1-3 of each visit; a fresh budget means attempt 1 again
    failed_again = harness.run(run.id)
    assert failed_again.status == "failed"
    assert triggers(engine, run.id).count("redrive") == 1
    assert [h.attempt for h in engine.history(run.id) if h.trigger == "retry"] == [1, 2, 1, 2]


def test_signal_fires_a_declared_trigger(engine: Engine, harness: WorkflowHarness) -> None:
    """A signal moves the run along a declared edge and merges its data into the context."""
    run = engine.start("approval")
    harness.step()
    moved = engine.signal(run.id, "approved", {"approver": "kim"})
    assert moved.state == "applying"
    assert moved.context == {"approver": "kim"}
    assert harness.run(run.id).state == "applied"
    with pytest.raises(IllegalOperationError, match=r"run \w+ is succeeded"):
        engine.signal(run.id, "approved")


def test_undeclared_signal_is_refused(engine: Engine) -> None:
    """A signal not declared from the run's state is refused, listing the allowed ones."""
    run = engine.start("approval")
    with pytest.raises(
        IllegalOperationError,
        match=(
            r"in state 'awaiting', where signal 'applied' is not declared; "
            r"allowed: 'approved', 'rejected'"
        ),
    ):
        engine.signal(run.id, "applied")
    with pytest.raises(InvalidParamsError, match=r"signal data must be a JSON object"):
        engine.signal(run.id, "approved", "yes")  # type: ignore[arg-type]
    assert engine.get(run.id).state == "awaiting"


def test_pause_during_a_step_keeps_a_scheduled_pause(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """An immediate pause applied at a boundary does not forget a pause scheduled further on."""
    run = engine.start("pipeline")
    engine.pause(run.id, at="storing")
    running = harness.claim_next()
    engine.pause(run.id)
    running.finish()
    paused = harness.run(run.id)
    assert (paused.state, paused.pause_at) == ("transforming", "storing")
    engine.resume(run.id)
    assert harness.run(run.id).state == "storing"
    assert engine.get(run.id).status == "paused"


def test_a_pause_of_an_unclaimed_run_uses_up_the_pause_scheduled_there(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Pausing a run whose step waits unclaimed uses up a pause scheduled for its state:
    once resumed, it runs to the end without pausing again."""
    run = engine.start("pipeline", pause_at="fetching")
    paused = engine.pause(run.id)
    assert (paused.status, paused.state, paused.pause_at) == ("paused", "fetching", None)
    engine.resume(run.id)
    assert harness.run(run.id).status == "succeeded"
    assert triggers(engine, run.id) == [
        "start",
        "pause",
        "resume",
        "fetched",
        "transformed",
        "stored",
    ]
