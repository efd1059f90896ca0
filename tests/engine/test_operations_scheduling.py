"""Cancel at a state, clearing a scheduled pause, resume's fresh attempt budget and the
refusals of pauses that could never apply."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statewright import Engine, IllegalOperationError, InvalidParamsError
from statewright.testing import WorkflowHarness


def triggers(engine: Engine, run_id: str) -> list[str]:
    return [h.trigger for h in engine.history(run_id)]


def test_cancel_at_a_state_ahead(engine: Engine, harness: WorkflowHarness) -> None:
    """A cancel scheduled for a later state cancels the run when it reaches that state."""
    run = engine.start("pipeline")
    assert engine.cancel(run.id, at="storing").cancel_at == "storing"
    cancelled = harness.run(run.id)
    assert (cancelled.status, cancelled.state, cancelled.cancel_at) == (
        "cancelled",
        "storing",
        None,
    )
    assert triggers(engine, run.id) == ["start", "fetched", "transformed", "cancel"]


def test_cancel_at_a_state_of_a_paused_run(engine: Engine, harness: WorkflowHarness) -> None:
    """A paused run keeps a cancel scheduled for later: resumed, it is cancelled there."""
    run = engine.start("pipeline", pause_at="transforming")
    assert harness.run(run.id).status == "paused"
    engine.cancel(run.id, at="storing")
    engine.resume(run.id)
    cancelled = harness.run(run.id)
    assert (cancelled.status, cancelled.state) == ("cancelled", "storing")


def test_a_paused_run_refuses_a_pause_or_cancel_at_the_state_it_is_paused_in(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Paused in a state, a run refuses a pause or cancel scheduled for that state (it
    would apply the moment the run resumed), naming the states ahead; resumed, it goes on."""
    run = engine.start("pipeline", pause_at="transforming")
    assert harness.run(run.id).status == "paused"
    for verb in (engine.pause, engine.cancel):
        with pytest.raises(IllegalOperationError) as refused:
            verb(run.id, at="transforming")
        assert "paused in 'transforming'" in str(refused.value)
        assert "states ahead: storing" in str(refused.value)
    assert engine.get(run.id).pause_at is None
    assert engine.get(run.id).cancel_at is None
    engine.resume(run.id)
    assert harness.run(run.id).status == "succeeded"


def test_cancel_and_pause_for_the_same_state_cancel_wins(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A cancel and a pause scheduled for one state: the run is cancelled, not paused."""
    run = engine.start("pipeline")
    engine.pause(run.id, at="storing")
    engine.cancel(run.id, at="storing")
    assert harness.run(run.id).status == "cancelled"
    other = engine.start("pipeline")
    engine.cancel(other.id, at="transforming")
    running = harness.claim_next()
    engine.pause(other.id)  # a pause now, applied at the same boundary as the cancel
    running.finish()
    assert harness.run(other.id).status == "cancelled"


def test_pause_before_a_later_cancel_keeps_the_cancel(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A pause at an earlier state applies first; the later cancel still stands after resume."""
    run = engine.start("pipeline")
    engine.pause(run.id, at="transforming")
    engine.cancel(run.id, at="storing")
    paused = harness.run(run.id)
    assert (paused.status, paused.state, paused.cancel_at) == ("paused", "transforming", "storing")
    engine.resume(run.id)
    cancelled = harness.run(run.id)
    assert (cancelled.status, cancelled.state) == ("cancelled", "storing")


def test_cancelling_a_cancelled_run_changes_nothing(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Cancel of a cancelled run returns it as it is; a succeeded run is still refused."""
    run = engine.start("approval")
    first = engine.cancel(run.id)
    again = engine.cancel(run.id)
    assert again == first
    assert engine.cancel(run.id, at="applying") == first
    assert triggers(engine, run.id) == ["start", "cancel"]
    done = engine.start("pipeline")
    harness.run(done.id)
    with pytest.raises(IllegalOperationError, match=r"is succeeded \(it has finished\)"):
        engine.cancel(done.id)


def test_cancel_at_refusals(engine: Engine, harness: WorkflowHarness) -> None:
    """Cancel at an unknown, final or passed state is refused naming the states ahead."""
    run = engine.start("pipeline")
    harness.step()
    with pytest.raises(
        InvalidParamsError,
        match=r"cannot cancel at 'nowhere': unknown state 'nowhere'.*states ahead: transforming, "
        r"storing",
    ):
        engine.cancel(run.id, at="nowhere")
    with pytest.raises(InvalidParamsError, match=r"done is a final state"):
        engine.cancel(run.id, at="done")
    with pytest.raises(IllegalOperationError, match=r"'fetching' is not ahead of it"):
        engine.cancel(run.id, at="fetching")
    assert engine.get(run.id).cancel_at is None


def test_clear_a_scheduled_pause(engine: Engine, harness: WorkflowHarness) -> None:
    """Clearing forgets a pause asked for now or at a state ahead; the run goes on."""
    run = engine.start("pipeline")
    engine.pause(run.id, at="storing")
    running = harness.claim_next()
    assert engine.pause(run.id).pause_requested
    cleared = engine.clear_pause(run.id)
    assert (cleared.pause_requested, cleared.pause_at, cleared.status) == (False, None, "running")
    running.finish()
    assert harness.run(run.id).status == "succeeded"
    assert "pause" not in triggers(engine, run.id)


def test_clear_pause_of_a_paused_run_keeps_it_paused(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """On a paused run, clearing drops the pause scheduled further on and leaves it paused."""
    run = engine.start("pipeline", pause_at="transforming")
    harness.run(run.id)
    engine.pause(run.id, at="storing")
    cleared = engine.clear_pause(run.id)
    assert (cleared.status, cleared.pause_at) == ("paused", None)
    assert engine.clear_pause(run.id) == cleared  # nothing scheduled: nothing changes
    engine.resume(run.id)
    assert harness.run(run.id).status == "succeeded"
    with pytest.raises(IllegalOperationError, match=r"only a run that is running or paused"):
        engine.clear_pause(run.id)


def test_pause_during_the_last_step_is_refused(engine: Engine, harness: WorkflowHarness) -> None:
    """With the last step running, no state is left to pause at: refused, nothing recorded."""
    run = engine.start("pipeline")
    harness.step()
    harness.step()
    running = harness.claim_next()
    assert running.step.state == "storing"
    with pytest.raises(
        IllegalOperationError,
        match=r"running its last step 'storing'; there is no state left to pause at",
    ):
        engine.pause(run.id)
    with pytest.raises(IllegalOperationError, match=r"states ahead: \(none\)"):
        engine.pause(run.id, at="storing")
    assert not engine.get(run.id).pause_requested
    assert running.finish().status == "succeeded"


def test_pause_at_a_final_or_unknown_state_says_which(engine: Engine) -> None:
    """A final state and an unknown state are refused with different messages."""
    run = engine.start("pipeline")
    with pytest.raises(
        InvalidParamsError,
        match=r"cannot pause at 'done': done is a final state.*states ahead: fetching, "
        r"transforming, storing",
    ):
        engine.pause(run.id, at="done")
    with pytest.raises(
        InvalidParamsError,
        match=r"unknown state 'no-such-state' in workflow 'pipeline'; states ahead: fetching, "
        r"transforming, storing",
    ):
        engine.pause(run.id, at="no-such-state")
    with pytest.raises(InvalidParamsError, match=r"done is a final state"):
        engine.start("pipeline", pause_at="done")


def test_resume_gives_the_step_a_fresh_attempt_budget(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A run paused after its last attempt's worker died runs the step again on resume."""
    run = engine.start("pipeline", {"fail": {"transforming": 2}})
    harness.step()  # fetching
    harness.step()  # transforming, attempt 1 fails
    harness.step()  # attempt 2 fails
    harness.clock.advance(timedelta(minutes=5))
    running = harness.claim_next()
    assert running.claim.attempt == 3  # the last of three
    engine.pause(run.id)
    # the worker dies: its lease runs out, the reaper sends the step again, the pause applies
    paused = harness.run(run.id)
    assert (paused.status, paused.state, paused.attempt) == ("paused", "transforming", 3)
    resumed = engine.resume(run.id)
    assert resumed.attempt == 0
    done = harness.run(run.id)
    assert done.status == "succeeded", done.failure_reason
    retries = [h.attempt for h in engine.history(run.id) if h.trigger == "retry"]
    assert retries == [1, 2, 1, 2]  # the resumed step had three attempts of its own
