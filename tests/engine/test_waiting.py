"""Waiting states: declaration checks, the durable timeout, signals with a handler, signals
kept for a paused run, and a signal racing the timeout on real row locks."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import select

from statewright import (
    DefinitionError,
    Engine,
    IllegalOperationError,
    InMemoryMetrics,
    PermanentError,
    SignalTooLateError,
    StepContext,
    Wait,
    Workflow,
    on_signal,
    step,
)
from statewright.models.engine import OutboxMessage
from statewright.testing import WorkflowHarness
from tests.sample_workflows import effect_counts

WEEK = timedelta(days=7)


def lines(engine: Engine, run_id: str) -> list[str]:
    return [f"{h.from_state or ''} --{h.trigger}--> {h.to_state}" for h in engine.history(run_id)]


def outbox(engine: Engine, run_id: str) -> list[OutboxMessage]:
    with engine.db.sessions() as session:
        rows = session.execute(select(OutboxMessage).where(OutboxMessage.run_id == run_id))
        return list(rows.scalars())


def effects(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.sessions() as session:
        return effect_counts(session, run_id)


def waiting_run(engine: Engine, harness: WorkflowHarness, **params: Any) -> str:
    run = engine.start("review", params)
    harness.step()  # asking
    assert engine.get(run.id).state == "awaiting"
    return run.id


def declare(**body: Any) -> type[Workflow]:
    def ask(self: Any, ctx: StepContext) -> Literal["asked"]:
        return "asked"

    namespace: dict[str, Any] = {
        "name": "bad_wait",
        "transitions": [("asked", "asking", "awaiting"), ("came", "awaiting", "done")],
        "terminal": ["done"],
        "asking": step(initial=True)(ask),
        **body,
    }
    return type("BadWait", (Workflow,), namespace)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"waits": {"awaiting": Wait(signals=["went"])}},
            "waits for trigger 'went', which is not declared from it; declared: 'came'",
        ),
        (
            {"waits": {"awaiting": Wait(signals=["came"], timeout=60, on_timeout="late")}},
            "waits for trigger 'late', which is not declared from it",
        ),
        (
            {
                "waits": {"awaiting": Wait(signals=["came"])},
                "awaiting": step("awaiting")(lambda self, ctx: "came"),
            },
            "waiting state 'awaiting' also has a @step handler",
        ),
        (
            {
                "waits": {"awaiting": Wait(signals=["came"])},
                "heard": on_signal("asking")(lambda self, ctx: None),
            },
            "@on_signal('asking') names no waiting state; waiting states: 'awaiting'",
        ),
        ({"waits": {"awaiting": "came"}}, "waits must map state names to Wait(...)"),
    ],
)
def test_wait_declarations_are_checked(body: dict[str, Any], message: str) -> None:
    """A wait whose signals or timeout trigger are not edges out of it is refused."""
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        declare(**body)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signals": []}, "must name one or more triggers"),
        ({"signals": ["a"], "timeout": -5, "on_timeout": "b"}, "timeout=...) must be positive"),
        ({"signals": ["a"], "timeout": 60}, "needs both timeout= and on_timeout="),
        ({"signals": ["a"], "on_timeout": "b"}, "needs both timeout= and on_timeout="),
    ],
)
def test_bad_wait_options_are_refused(options: dict[str, Any], message: str) -> None:
    """Wait(...) refuses no signals, a non-positive timeout, or half a timeout."""
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Wait(**options)


def test_entering_a_wait_writes_only_its_timer(engine: Engine, harness: WorkflowHarness) -> None:
    """A waiting run has no message queued, one timer due after the timeout, and no history
    beyond the move that entered the wait."""
    run_id = waiting_run(engine, harness)
    entered = engine.history(run_id)[-1].at
    [timer] = outbox(engine, run_id)
    assert (timer.task_name, timer.not_before) == ("review.awaiting", entered + WEEK)
    assert not harness.queue.messages
    engine.reaper.recover_all()  # a restarted embedded worker leaves a waiting run alone
    engine.reaper.run_once()
    assert lines(engine, run_id) == [" --start--> asking", "asking --asked--> awaiting"]


def test_signal_runs_its_handler_in_the_moves_transaction(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A signal's handler writes its domain row and context with the move; the timer goes."""
    run_id = waiting_run(engine, harness)
    moved = engine.signal(run_id, "submitted", {"files": ["passport.pdf"]})
    assert (moved.state, moved.context["submission"]) == ("checking", ["passport.pdf"])
    assert effects(engine, run_id) == {"signal:submitted": 1}
    assert [m.task_name for m in outbox(engine, run_id)] == []
    assert harness.run(run_id).state == "done"
    row = engine.history(run_id)[2]
    assert (row.trigger, row.detail) == (
        "submitted",
        {"signal": True, "data": {"files": ["passport.pdf"]}},
    )
    assert metrics.total("signal.delivered", trigger="submitted") == 1


def test_a_refusing_signal_handler_writes_nothing(engine: Engine, harness: WorkflowHarness) -> None:
    """If the signal handler raises, the signal is refused and the run still waits."""
    run_id = waiting_run(engine, harness)
    with pytest.raises(PermanentError, match="submission refused: unsigned"):
        engine.signal(run_id, "submitted", {"refuse": "unsigned"})
    assert engine.get(run_id).state == "awaiting"
    assert effects(engine, run_id) == {}
    assert len(outbox(engine, run_id)) == 1


def test_only_the_waits_signals_are_accepted(engine: Engine, harness: WorkflowHarness) -> None:
    """A trigger that is not one of the wait's signals is refused with the ones it waits for."""
    run_id = waiting_run(engine, harness)
    with pytest.raises(IllegalOperationError, match="'submitted', 'withdrawn'; 'expired' is not"):
        engine.signal(run_id, "expired")


def test_timeout_takes_its_trigger_on_the_virtual_clock(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """With no signal, the timer fires a week after the wait began and takes 'expired'."""
    run_id = waiting_run(engine, harness)
    done = harness.run(run_id)
    assert (done.status, done.state) == ("succeeded", "expired")
    history = engine.history(run_id)
    assert history[-1].at - history[-2].at == WEEK
    assert lines(engine, run_id)[-1] == "awaiting --expired--> expired"
    assert metrics.total("wait.timed_out", state="awaiting") == 1


def test_a_signal_after_the_timeout_is_too_late(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A signal that arrives after the timeout won is refused as too late and counted."""
    run_id = waiting_run(engine, harness)
    harness.run(run_id)
    with pytest.raises(SignalTooLateError, match=r"stopped waiting in 'awaiting' .* 'expired'"):
        engine.signal(run_id, "submitted", {"files": []})
    assert metrics.total("wait.lost", by="signal") == 1
    assert effects(engine, run_id) == {}


def test_a_timer_after_a_signal_is_dropped(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A timer already sent when a signal wins finds the run moved, and is dropped."""
    run_id = waiting_run(engine, harness)
    harness.clock.advance(WEEK)
    engine.relay.drain()  # the timer is on its way to a worker
    [timer] = list(harness.queue.messages)
    harness.queue.messages.clear()
    engine.signal(run_id, "withdrawn")
    harness.deliver(timer)
    assert engine.get(run_id).state == "withdrawn"
    assert metrics.total("wait.lost", by="timeout") == 1
    assert lines(engine, run_id)[-1] == "awaiting --withdrawn--> withdrawn"


def test_a_signal_to_a_paused_run_is_kept_until_resume(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A paused waiting run keeps a signal (no timer, no history) and takes it on resume,
    its handler running then; a second kept signal is dropped and counted."""
    run_id = waiting_run(engine, harness)
    assert engine.pause(run_id).status == "paused"
    assert outbox(engine, run_id) == []
    kept = engine.signal(run_id, "submitted", {"files": ["a.pdf"]})
    engine.signal(run_id, "withdrawn")
    assert kept.status == "paused"
    assert [s["trigger"] for s in engine.get(run_id).kept_signals] == ["submitted", "withdrawn"]
    assert lines(engine, run_id)[-1] == "awaiting --pause--> awaiting"
    assert effects(engine, run_id) == {}
    resumed = engine.resume(run_id)
    assert (resumed.state, resumed.kept_signals) == ("checking", ())
    assert effects(engine, run_id) == {"signal:submitted": 1}
    assert lines(engine, run_id)[-2:] == [
        "awaiting --resume--> awaiting",
        "awaiting --submitted--> checking",
    ]
    assert metrics.total("signal.dropped", trigger="withdrawn") == 1
    assert harness.run(run_id).state == "done"


def test_a_signal_undeclared_for_a_paused_run_is_refused(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A paused run keeps only a signal its state waits for."""
    run_id = waiting_run(engine, harness)
    engine.pause(run_id)
    with pytest.raises(IllegalOperationError, match="'checked' is not one of them"):
        engine.signal(run_id, "checked")
    assert engine.get(run_id).kept_signals == ()


def test_pause_at_a_waiting_state_applies_on_entry_and_resume_rearms_the_timer(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A pause asked for at a waiting state applies as the run enters it; resuming arms
    the timer for the wait's original end, so a pause does not extend the wait."""
    run = engine.start("review", {}, pause_at="awaiting")
    paused = harness.run(run.id)
    assert (paused.status, paused.state) == ("paused", "awaiting")
    entered = engine.history(run.id)[-2].at
    harness.clock.advance(timedelta(days=2))
    engine.resume(run.id)
    [timer] = outbox(engine, run.id)
    assert timer.not_before == entered + WEEK
    assert harness.run(run.id).state == "expired"


def test_a_lost_timer_is_sent_again_after_its_lease(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A timer published and lost (broker restart) is sent again once its lease expires."""
    run_id = waiting_run(engine, harness)
    harness.clock.advance(WEEK)
    engine.relay.drain()
    harness.queue.messages.clear()  # the broker lost it
    assert harness.run(run_id).state == "expired"
    assert "awaiting --redispatch--> awaiting" in lines(engine, run_id)


def _race(engine: Engine, run_id: str, token: int) -> tuple[bool, bool]:
    """Fire the timer and a signal at once from two threads; which of them moved the run."""
    step = engine.registry.step("review", "awaiting")
    barrier = threading.Barrier(2)
    won = {"timeout": False, "signal": False}

    def timeout() -> None:
        barrier.wait()
        before = engine.metrics.total("wait.timed_out")  # type: ignore[attr-defined]
        engine.timers.fire_timeout(step, run_id, token)
        won["timeout"] = engine.metrics.total("wait.timed_out") > before  # type: ignore[attr-defined]

    def signal() -> None:
        barrier.wait()
        try:
            engine.signal(run_id, "submitted", {"files": ["x"]})
            won["signal"] = True
        except SignalTooLateError:
            pass

    threads = [threading.Thread(target=timeout), threading.Thread(target=signal)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return won["timeout"], won["signal"]


def test_signal_and_timeout_race_exactly_one_wins(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """Timer and signal fired together from two threads, each on its own connection: in
    every run exactly one moves it, and the other is dropped and counted."""
    runs = []
    for _ in range(8):
        run_id = waiting_run(engine, harness)
        runs.append((run_id, engine.get(run_id).token))
    harness.clock.advance(WEEK)
    outcomes = [_race(engine, run_id, token) for run_id, token in runs]
    assert all(timeout != signal for timeout, signal in outcomes)
    for run_id, _ in runs:
        exits = [h for h in engine.history(run_id) if h.from_state == "awaiting"]
        assert len(exits) == 1
        assert effects(engine, run_id) == (
            {"signal:submitted": 1} if exits[0].trigger == "submitted" else {}
        )
    assert metrics.total("wait.lost") == len(runs)


def test_a_kept_signal_its_handler_refuses_is_dropped_on_resume(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """On resume, a kept signal whose handler raises is dropped (its writes rolled back to
    a savepoint) and the run waits again, its timer armed."""
    run_id = waiting_run(engine, harness)
    engine.pause(run_id)
    engine.signal(run_id, "submitted", {"refuse": "unsigned"})
    resumed = engine.resume(run_id)
    assert (resumed.status, resumed.state, resumed.kept_signals) == ("running", "awaiting", ())
    assert metrics.total("signal.dropped", trigger="submitted") == 1
    assert [m.task_name for m in outbox(engine, run_id)] == ["review.awaiting"]
    assert lines(engine, run_id)[-1] == "awaiting --resume--> awaiting"
    engine.signal(run_id, "submitted", {"files": ["b.pdf"]})
    assert effects(engine, run_id) == {"signal:submitted": 1}


def test_a_timer_delivered_early_is_armed_again(engine: Engine, harness: WorkflowHarness) -> None:
    """A timer that arrives before its time (a relay whose clock runs ahead) does not end
    the wait; it is armed again for the wait's end."""
    run_id = waiting_run(engine, harness)
    entered = engine.history(run_id)[-1].at
    token = engine.get(run_id).token
    engine.timers.fire_timeout(engine.registry.step("review", "awaiting"), run_id, token)
    assert engine.get(run_id).state == "awaiting"
    assert [m.not_before for m in outbox(engine, run_id)] == [entered + WEEK, entered + WEEK]
    assert harness.run(run_id).state == "expired"
    assert lines(engine, run_id)[-1] == "awaiting --expired--> expired"


def test_cancel_at_a_waiting_state_applies_on_entry_and_arms_no_timer(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A cancel scheduled for a waiting state cancels the run as it enters it: no timer
    stays armed, and the cancel uses up what was scheduled."""
    run = engine.start("review", {})
    assert engine.cancel(run.id, at="awaiting").cancel_at == "awaiting"
    cancelled = harness.run(run.id)
    assert (cancelled.status, cancelled.state, cancelled.cancel_at) == (
        "cancelled",
        "awaiting",
        None,
    )
    assert lines(engine, run.id)[-2:] == [
        "asking --asked--> awaiting",
        "awaiting --cancel--> awaiting",
    ]
    assert outbox(engine, run.id) == []
    with pytest.raises(IllegalOperationError, match="is cancelled"):
        engine.signal(run.id, "submitted")


@pytest.mark.parametrize(("operation", "status"), [("cancel", "cancelled"), ("pause", "paused")])
def test_a_cancel_or_pause_at_the_waiting_state_a_run_is_in_applies_now(
    engine: Engine, harness: WorkflowHarness, operation: str, status: str
) -> None:
    """Scheduled for the waiting state the run already waits in, a cancel or pause applies
    at once (no step will be claimed there to apply it) and drops the wait's timer."""
    run_id = waiting_run(engine, harness)
    asked = getattr(engine, operation)(run_id, at="awaiting")
    assert (asked.status, asked.state, asked.pause_at, asked.cancel_at) == (
        status,
        "awaiting",
        None,
        None,
    )
    assert lines(engine, run_id)[-1] == f"awaiting --{operation}--> awaiting"
    assert outbox(engine, run_id) == []


def test_resume_after_a_pause_at_a_waiting_state_waits_without_pausing_again(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Resumed after a pause scheduled for its waiting state, the run waits again (the
    pause was used up); while paused there, a cancel for that state is refused (it would
    apply the moment the run resumed) and a cancel now applies."""
    run = engine.start("review", {}, pause_at="awaiting")
    assert harness.run(run.id).status == "paused"
    assert engine.resume(run.id).status == "running"
    assert engine.signal(run.id, "submitted").state == "checking"
    other = engine.start("review", {}, pause_at="awaiting")
    harness.run(other.id)
    with pytest.raises(IllegalOperationError, match="paused in 'awaiting'"):
        engine.cancel(other.id, at="awaiting")
    assert engine.cancel(other.id).status == "cancelled"
    assert outbox(engine, other.id) == []
