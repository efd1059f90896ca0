"""Step events: what happens to each step is told to observers, in order, with what
the engine's own metrics, logs and Sentry reports are built from.

Each test runs on SQLite and on PostgreSQL, stepped by the harness on a virtual clock.
"""

from __future__ import annotations

from statewright.step_events import (
    StepClaimed,
    StepCompleted,
    StepContinued,
    StepDropped,
    StepFailed,
    StepObserver,
    StepPolled,
    StepRetried,
)
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory


class Recorder(StepObserver):
    """Keeps each event as ``(event, state, detail)``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def claimed(self, event: StepClaimed) -> None:
        self.seen.append(("claimed", event.step.state, str(event.claim.attempt)))

    def completed(self, event: StepCompleted) -> None:
        self.seen.append(("completed", event.step.state, event.dest))

    def polled(self, event: StepPolled) -> None:
        self.seen.append(("polled", event.step.state, ""))

    def retried(self, event: StepRetried) -> None:
        self.seen.append(("retried", event.step.state, str(event.detail["error_type"])))

    def failed(self, event: StepFailed) -> None:
        self.seen.append(("failed", event.step.state, event.reason))

    def dropped(self, event: StepDropped) -> None:
        self.seen.append(("dropped", event.step.state, event.reason))

    def continued(self, event: StepContinued) -> None:
        self.seen.append(("continued", event.step.state, ""))


def test_an_observer_is_told_each_claim_retry_and_completion_in_order(
    make_engine: EngineFactory,
) -> None:
    """A step that fails once is claimed, retried, claimed again and completed."""
    recorder = Recorder()
    engine = make_engine()
    harness = WorkflowHarness(engine, observers=[recorder])
    run = engine.start("pipeline", {"fail": {"transforming": 1}})
    assert harness.run(run.id).status == "succeeded"
    assert recorder.seen == [
        ("claimed", "fetching", "1"),
        ("completed", "fetching", "transforming"),
        ("claimed", "transforming", "1"),
        ("retried", "transforming", "builtins.ConnectionError"),
        ("claimed", "transforming", "2"),
        ("completed", "transforming", "storing"),
        ("claimed", "storing", "1"),
        ("completed", "storing", "done"),
    ]


def test_polls_and_a_failed_run_are_told_too(make_engine: EngineFactory) -> None:
    """A poll is told as polled; a permanent error as the run's failure, with its reason."""
    recorder = Recorder()
    engine = make_engine()
    harness = WorkflowHarness(engine, observers=[recorder])
    waiter = engine.start("waiter", {"ready_after": 1})
    assert harness.run(waiter.id).status == "succeeded"
    failing = engine.start("pipeline", {"permanent": "fetching"})
    assert harness.run(failing.id).status == "failed"
    assert [e[:2] for e in recorder.seen] == [
        ("claimed", "waiting"),
        ("polled", "waiting"),
        ("claimed", "waiting"),
        ("completed", "waiting"),
        ("claimed", "finishing"),
        ("completed", "finishing"),
        ("claimed", "fetching"),
        ("failed", "fetching"),
    ]
    assert recorder.seen[-1][2] == "the input cannot be fetching"


def test_an_observer_added_to_the_engine_sees_a_duplicate_dropped(
    make_engine: EngineFactory,
) -> None:
    """An observer added to ``engine.step_observers`` hears of a second copy of a
    message being dropped while the step is claimed."""
    recorder = Recorder()
    engine = make_engine()
    engine.step_observers.add(recorder)
    harness = WorkflowHarness(engine)
    run = engine.start("pipeline", {})
    harness.engine.relay.drain()
    message = harness.queue.messages[0]
    claimed = harness.claim_next()
    harness.deliver(message)  # the same message again, while the step is claimed
    claimed.finish()
    assert recorder.seen == [
        ("dropped", "fetching", "duplicate"),
        ("claimed", "fetching", "1"),
        ("completed", "fetching", "transforming"),
    ]
    assert harness.run(run.id).status == "succeeded"


def test_a_continued_step_is_told_as_continued(make_engine: EngineFactory) -> None:
    """With continuing on, the next step on the same queue is told as continued."""
    recorder = Recorder()
    engine = make_engine(continue_for=5.0)
    harness = WorkflowHarness(engine, continue_steps=True, observers=[recorder])
    run = engine.start("pipeline", {})
    assert harness.run(run.id).status == "succeeded"
    assert [kind for kind, _, _ in recorder.seen] == [
        "claimed",
        "completed",
        "continued",
        "claimed",
        "completed",
        "continued",
        "claimed",
        "completed",
    ]
