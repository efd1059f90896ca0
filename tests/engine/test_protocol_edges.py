"""The step protocol at its edges: another writer's move is never taken for one's own,
a handler cannot commit its step's session, and signal data respects the context limit.

Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sqlalchemy import func, select

from statewright import Engine, InMemoryMetrics, InvalidParamsError, StepContext
from statewright.models import OutboxMessage
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory
from tests.engine.edge_workflows import EDGE_WORKFLOWS, HOOKS
from tests.sample_workflows import effect_counts

JOIN = 30.0


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine(EDGE_WORKFLOWS)


@pytest.fixture(autouse=True)
def no_hooks() -> Iterator[None]:
    yield
    HOOKS.clear()


def effects_of(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.sessions() as session:
        return effect_counts(session, run_id)


def triggers(engine: Engine, run_id: str) -> list[str]:
    return [h.trigger for h in engine.history(run_id)]


def next_message(harness: WorkflowHarness) -> Any:
    harness.engine.relay.drain()
    return harness.queue.messages.popleft()


def worker(engine: Engine, message: Any) -> threading.Thread:
    """A worker thread running one delivery of ``message``'s step."""
    workflow, _, state = message.task_name.partition(".")
    step = engine.registry.step(workflow, state)

    def deliver() -> None:
        with sentry_sdk.isolation_scope():  # its Sentry tags stay in this thread
            engine.executor.run_step(step, message.kwargs["run_id"], message.kwargs["token"])

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    return thread


def test_an_error_in_a_step_moved_on_by_a_signal_is_dropped(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """Worker 1 is inside `collecting`; an operator signals `skip`; worker 2 claims
    `reviewing`; worker 1's handler then raises. Worker 1's error is dropped: worker 2's
    step completes, nothing is dispatched again, every effect happens once."""
    inside_1, go_1, inside_2, go_2 = (threading.Event() for _ in range(4))

    def collecting(ctx: StepContext) -> None:
        inside_1.set()
        assert go_1.wait(JOIN)
        raise ConnectionError("the upstream went away")

    def reviewing(ctx: StepContext) -> None:
        inside_2.set()
        assert go_2.wait(JOIN)

    HOOKS.update(collecting=collecting, reviewing=reviewing)
    run = engine.start("review", {})
    first = worker(engine, next_message(harness))
    try:
        assert inside_1.wait(JOIN)
        engine.signal(run.id, "skip", {"by": "operator"})
        second = worker(engine, next_message(harness))
        assert inside_2.wait(JOIN)
        go_1.set()
        first.join(JOIN)
        assert not first.is_alive(), "worker 1 could not record its error"
    finally:
        go_1.set()
        go_2.set()
    second.join(JOIN)
    assert engine.get(run.id).status == "succeeded"
    assert triggers(engine, run.id) == ["start", "skip", "reviewed"]
    assert effects_of(engine, run.id) == {"reviewing": 1}
    assert metrics.total("step.dropped", state="collecting", reason="fenced") == 1
    harness.engine.relay.drain()
    assert not harness.queue.messages, "a step was dispatched again"
    with engine.db.sessions() as session:
        assert session.execute(select(func.count()).select_from(OutboxMessage)).scalar() == 0


@pytest.mark.parametrize("call", ["commit", "rollback", "close"])
@pytest.mark.parametrize("swallow", [False, True], ids=["raised", "caught"])
def test_a_handler_that_ends_its_own_transaction_fails_its_step(
    engine: Engine, harness: WorkflowHarness, call: str, swallow: bool
) -> None:
    """A handler that commits, rolls back or closes its step's session is refused, even if
    it catches the refusal: the run fails at once, saying what a handler must not do, and
    the step's writes never land."""
    run = engine.start("careless", {"call": call, "swallow": swallow})
    failed = harness.run(run.id)
    assert failed.status == "failed"
    assert failed.failure_reason is not None
    assert f"called ctx.session.{call}()" in failed.failure_reason
    assert "must not commit, roll back or close its step's session" in failed.failure_reason
    assert triggers(engine, run.id) == ["start", "fail"]
    assert effects_of(engine, run.id) == {}


def test_signal_data_that_would_outgrow_the_context_is_refused(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Signal data that fits on its own but not merged into the run's context is refused
    at signal time, naming the size and the limit; the run is untouched, and data that
    fits goes through and the next step runs."""
    run = engine.start("gathering", {"notes": 40_000})
    harness.step()
    with pytest.raises(
        InvalidParamsError,
        match=(
            rf"signal data would make the context of run {run.id} 70\d{{3}} bytes as JSON; "
            r"at most 65536 bytes are allowed \(it holds 40\d{3} bytes already"
        ),
    ):
        engine.signal(run.id, "enough", {"summary": "s" * 30_000})
    unchanged = engine.get(run.id)
    assert (unchanged.state, unchanged.status, len(unchanged.context["notes"])) == (
        "gathering",
        "running",
        40_000,
    )
    assert triggers(engine, run.id) == ["start", "poll"]
    engine.signal(run.id, "enough", {"summary": "s" * 20_000})
    assert harness.run(run.id).status == "succeeded"
    assert effects_of(engine, run.id) == {"summing": 1}
