"""Continuing a run in process: after a step advances, the same delivery claims and runs
the next one, without a message, within ``continue_for`` and the delivery's time limit.

Each test runs on SQLite and on PostgreSQL, stepped by the harness on a virtual clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal

import pytest
from sqlalchemy.orm import Session

from statewright import Engine, InMemoryMetrics, StepContext, Workflow, execution, step
from statewright.context import Claim
from statewright.instrumentation import HARD_LIMIT_MARGIN
from statewright.models import WorkflowRun
from statewright.recorder import Advanced
from statewright.registry import StepOptions
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory
from tests.sample_workflows import WORKFLOWS, effect_counts, record_effect

CONTINUE_FOR = 5.0


class Handoff(Workflow):
    """Two steps on different queues: the second goes where its own workers are."""

    name = "handoff"
    transitions = [("prepared", "preparing", "shipping"), ("shipped", "shipping", "done")]
    terminal = ["done"]

    @step(initial=True)
    def preparing(self, ctx: StepContext) -> Literal["prepared"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "prepared"

    @step(queue="shipping")
    def shipping(self, ctx: StepContext) -> Literal["shipped"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "shipped"


class Uneven(Workflow):
    """Steps whose time limits differ: none fits the delivery of the one before it."""

    name = "uneven"
    transitions = [("a_done", "a", "b"), ("b_done", "b", "c"), ("c_done", "c", "done")]
    terminal = ["done"]

    @step(initial=True, time_limit=20)
    def a(self, ctx: StepContext) -> Literal["a_done"]:
        return "a_done"

    @step(time_limit=60)
    def b(self, ctx: StepContext) -> Literal["b_done"]:
        return "b_done"

    @step(time_limit=5)
    def c(self, ctx: StepContext) -> Literal["c_done"]:
        return "c_done"


class WorkerDied(BaseException):
    """Stands for the worker process dying mid-handler: nothing after it runs."""


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine([*WORKFLOWS, Handoff, Uneven], continue_for=CONTINUE_FOR)


@pytest.fixture
def harness(engine: Engine) -> WorkflowHarness:
    return WorkflowHarness(engine, continue_steps=True)


def delivered(harness: WorkflowHarness) -> list[str]:
    return [d.message.task_name for d in harness.deliveries]


def effects_of(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.sessions() as session:
        return effect_counts(session, run_id)


def attempts(engine: Engine, run_id: str) -> list[tuple[str | None, str, int]]:
    return [(h.from_state, h.trigger, h.attempt) for h in engine.history(run_id)]


def test_a_run_continues_in_the_delivery_of_its_first_step(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """Three steps on one queue run in one delivery; history and effects are as usual."""
    run = engine.start("pipeline", {})
    assert harness.run(run.id).status == "succeeded"
    assert delivered(harness) == ["pipeline.fetching"]
    assert attempts(engine, run.id) == [
        (None, "start", 0),
        ("fetching", "fetched", 1),
        ("transforming", "transformed", 1),
        ("storing", "stored", 1),
    ]
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}
    assert metrics.total("step.continued") == 2
    assert metrics.total("step.completed") == 3
    step_messages = [m for m in harness.queue.published if m.task_name.startswith("pipeline.")]
    assert len(step_messages) == 1


def test_a_continued_step_is_claimed_before_its_handler_runs(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The move commits the next step's claim: attempt 1, leased past the delivery's hard limit."""
    seen: dict[str, tuple[bool, int, timedelta]] = {}

    def look(step: StepOptions, claim: Claim) -> None:
        with engine.db.sessions() as session:
            row = session.get_one(WorkflowRun, claim.run_id)
            assert row.lease_expires_at is not None
            seen[step.state] = (row.claimed, row.attempt, row.lease_expires_at - engine.clock.now())

    engine.executor.before_handler = look
    run = engine.start("pipeline", {})
    harness.run(run.id)
    claimed, attempt, lease = seen["transforming"]
    assert (claimed, attempt) == (True, 1)
    # what is left of the delivery's soft limit (20 s + continue_for), the margin, the grace
    least = timedelta(seconds=20 + HARD_LIMIT_MARGIN + engine.settings.lease_grace)
    assert least <= lease <= least + timedelta(seconds=CONTINUE_FOR)


def test_a_pause_at_a_state_ahead_stops_the_run_there(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A pause scheduled for the next state is not claimed past: its message applies it."""
    run = engine.start("pipeline", {})
    engine.pause(run.id, at="storing")
    paused = harness.run(run.id)
    assert (paused.status, paused.state) == ("paused", "storing")
    assert delivered(harness) == ["pipeline.fetching", "pipeline.storing"]
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1}


@pytest.mark.parametrize(("operation", "status"), [("cancel", "cancelled"), ("pause", "paused")])
def test_a_cancel_or_pause_asked_for_mid_step_stops_the_run_at_the_boundary(
    engine: Engine, harness: WorkflowHarness, operation: str, status: str
) -> None:
    """A cancel or an immediate pause asked for while a continued step runs keeps that
    step and claims no more."""

    def stop_in_transforming(step: StepOptions, claim: Claim) -> None:
        if step.state == "transforming":
            getattr(engine, operation)(claim.run_id)

    engine.executor.before_handler = stop_in_transforming
    run = engine.start("pipeline", {})
    stopped = harness.run(run.id)
    assert (stopped.status, stopped.state) == (status, "storing")
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1}


def test_an_abort_fences_off_a_continued_step(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """An abort during a continued step discards that step's writes and stops the run."""

    def abort_in_transforming(step: StepOptions, claim: Claim) -> None:
        if step.state == "transforming":
            engine.abort(claim.run_id)

    engine.executor.before_handler = abort_in_transforming
    run = engine.start("pipeline", {})
    aborted = harness.run(run.id)
    assert (aborted.status, aborted.state) == ("failed", "transforming")
    assert effects_of(engine, run.id) == {"fetching": 1}
    assert metrics.total("step.dropped", reason="fenced", state="transforming") == 1


def test_a_continued_step_that_fails_is_retried_by_a_message(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A failed continued attempt is recorded as usual; its retry is a delivery of its own."""
    run = engine.start("pipeline", {"fail": {"transforming": 1}})
    assert harness.run(run.id).status == "succeeded"
    assert delivered(harness) == ["pipeline.fetching", "pipeline.transforming"]
    assert attempts(engine, run.id) == [
        (None, "start", 0),
        ("fetching", "fetched", 1),
        ("transforming", "retry", 1),
        ("transforming", "transformed", 2),
        ("storing", "stored", 1),
    ]
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}


def test_a_worker_that_dies_in_a_continued_step_is_recovered_by_its_lease(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The continued claim was committed, so the reaper takes the run on once it lapses."""
    harness.fail_at("transforming", 1, WorkerDied())
    run = engine.start("pipeline", {})
    with pytest.raises(WorkerDied):
        harness.step()
    with engine.db.sessions() as session:
        stuck = session.get_one(WorkflowRun, run.id)
        assert (stuck.state, stuck.claimed, stuck.attempt) == ("transforming", True, 1)
    harness.clear_failures()
    assert harness.run(run.id).status == "succeeded"
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}
    transforming = [(h.trigger, h.attempt) for h in engine.history(run.id)][2:4]
    assert transforming == [("redispatch", 1), ("transformed", 2)]


def test_a_step_on_another_queue_gets_its_own_message(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """The next step is not continued when its queue differs: its own workers take it."""
    run = engine.start("handoff", {})
    assert harness.run(run.id).status == "succeeded"
    assert delivered(harness) == ["handoff.preparing", "handoff.shipping"]


def test_without_continue_for_every_step_is_its_own_delivery(
    make_engine: EngineFactory,
) -> None:
    """``continue_for=0`` sends every step as a message (and adds nothing to time limits)."""
    engine = make_engine(continue_for=0.0)
    harness = WorkflowHarness(engine)
    run = engine.start("pipeline", {})
    assert harness.run(run.id).status == "succeeded"
    assert delivered(harness) == [
        "pipeline.fetching",
        "pipeline.transforming",
        "pipeline.storing",
    ]
    task = engine.celery.tasks["pipeline.fetching"]
    assert (task.soft_time_limit, task.time_limit) == (20.0, 20.0 + HARD_LIMIT_MARGIN)


def test_step_tasks_carry_time_limits_with_room_to_continue(engine: Engine) -> None:
    """A step's task limits are its own plus ``continue_for``, so a continued step gets
    its whole limit."""
    task = engine.celery.tasks["pipeline.fetching"]
    assert task.soft_time_limit == 20.0 + CONTINUE_FOR
    assert task.time_limit == 20.0 + CONTINUE_FOR + HARD_LIMIT_MARGIN


def test_the_harness_steps_one_delivery_at_a_time_unless_asked(engine: Engine) -> None:
    """A harness turns continuing off (it depends on real time) unless asked to keep it."""
    harness = WorkflowHarness(engine)
    run = engine.start("pipeline", {})
    assert harness.run(run.id).status == "succeeded"
    assert len(harness.deliveries) == 3


@pytest.mark.parametrize(
    ("elapsed", "next_limit", "left"),
    [
        (0.5, 20.0, 24.5),  # within continue_for: the next step gets its 20 s and more
        (4.0, 20.0, 21.0),
        (5.5, 20.0, None),  # past continue_for
        (4.99, 25.0, None),  # a longer limit than the delivery has left
        (0.5, 10.0, None),  # a much shorter one: it would run far past its own limit
        (0.5, 19.6, 24.5),  # shorter by less than continue_for
    ],
)
def test_a_delivery_goes_on_only_within_its_window_and_limits(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    elapsed: float,
    next_limit: float,
    left: float | None,
) -> None:
    """A delivery of a 20 s step, with 5 s to continue, takes a next step only within
    its first 5 s and only if that step's limit fits what is left, with no more than
    5 s to spare."""
    now = [100.0]
    monkeypatch.setattr(execution.time, "monotonic", lambda: now[0])
    first = engine.registry.step("pipeline", "transforming")
    assert first.time_limit == 20.0
    delivery = execution._Delivery.starting(first, CONTINUE_FOR, CONTINUE_FOR)
    now[0] += elapsed
    assert delivery.time_left_for(replace(first, time_limit=next_limit)) == left


def test_a_failure_between_the_commit_and_the_next_handler_hands_the_step_back(
    engine: Engine, harness: WorkflowHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If anything fails after the commit that claimed the next step and before its
    handler, the step is dispatched as a message at once, its attempt not counted."""
    completed = engine.executor._completed
    failed: list[str] = []

    def fail_once(step: StepOptions, *args: Any) -> None:
        if step.state == "fetching" and not failed:
            failed.append(step.state)
            raise RuntimeError("the metrics backend refused")
        completed(step, *args)

    monkeypatch.setattr(engine.executor, "_completed", fail_once)
    run = engine.start("pipeline", {})
    with pytest.raises(RuntimeError, match="metrics backend"):
        harness.step()
    with engine.db.sessions() as session:
        handed = session.get_one(WorkflowRun, run.id)
        assert (handed.state, handed.claimed, handed.attempt) == ("transforming", False, 0)
    assert harness.run(run.id).status == "succeeded"
    assert delivered(harness) == ["pipeline.fetching", "pipeline.transforming"]
    assert attempts(engine, run.id)[2:] == [
        ("transforming", "transformed", 1),
        ("storing", "stored", 1),
    ]


def test_a_commit_that_raises_after_landing_still_sends_the_next_step(
    engine: Engine, harness: WorkflowHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completing commit that landed but raised (a cut connection) leaves the claimed
    next step to a message, not to its lease."""
    advance = engine.recorder.advance_claimed
    commit = Session.commit
    armed: list[bool] = []

    def arm(session: Session, *args: Any, **kwargs: Any) -> Any:
        result = advance(session, *args, **kwargs)
        if result[0] is Advanced.CLAIMED and not armed:
            armed.append(True)
        return result

    def commit_then_raise(session: Session) -> None:
        commit(session)
        if armed == [True]:
            armed.append(False)
            raise ConnectionError("the connection was cut as COMMIT returned")

    monkeypatch.setattr(engine.recorder, "advance_claimed", arm)
    monkeypatch.setattr(Session, "commit", commit_then_raise)
    run = engine.start("pipeline", {})
    harness.step()
    with engine.db.sessions() as session:
        sent = session.get_one(WorkflowRun, run.id)
        assert (sent.state, sent.claimed, sent.attempt) == ("transforming", False, 0)
    assert harness.run(run.id).status == "succeeded"
    assert delivered(harness) == ["pipeline.fetching", "pipeline.transforming"]
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}
