"""Executing steps: history, retries, failures, polls, duplicates, crashes, after-commit dispatch.

Each test runs on SQLite and on PostgreSQL, stepped by the harness on a virtual clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select

from statewright import Engine, InMemoryMetrics
from statewright.dispatch import TaskMessage
from statewright.instrumentation import HARD_LIMIT_MARGIN
from statewright.models import OutboxMessage, WorkflowRun
from statewright.testing import LocalQueue, WorkflowHarness
from tests.sample_workflows import effect_counts


def moves(engine: Engine, run_id: str) -> list[tuple[str | None, str, str, int]]:
    return [(h.from_state, h.trigger, h.to_state, h.attempt) for h in engine.history(run_id)]


def effects_of(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.sessions() as session:
        return effect_counts(session, run_id)


def test_three_states_complete_with_exact_history(engine: Engine, harness: WorkflowHarness) -> None:
    """A three-state run succeeds; its history is exactly start and three transitions."""
    run = engine.start("pipeline", {"order": 7})
    done = harness.run(run.id)
    assert done.status == "succeeded"
    assert done.state == "done"
    assert moves(engine, run.id) == [
        (None, "start", "fetching", 0),
        ("fetching", "fetched", "transforming", 1),
        ("transforming", "transformed", "storing", 1),
        ("storing", "stored", "done", 1),
    ]
    assert [h.seq for h in engine.history(run.id)] == [1, 2, 3, 4]
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}
    assert done.context["stored_by"].startswith(f"{run.id}:storing:")
    assert done.finished_at is not None


def test_retries_are_spaced_by_the_policy(engine: Engine, harness: WorkflowHarness) -> None:
    """A step that raises twice then succeeds takes three attempts, 2s then 4s apart."""
    run = engine.start("pipeline", {"fail": {"transforming": 2}})
    assert harness.run(run.id).status == "succeeded"
    assert moves(engine, run.id)[2:5] == [
        ("transforming", "retry", "transforming", 1),
        ("transforming", "retry", "transforming", 2),
        ("transforming", "transformed", "storing", 3),
    ]
    times = [d.at for d in harness.deliveries if d.message.task_name == "pipeline.transforming"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == [timedelta(seconds=2), timedelta(seconds=4)]
    retry = engine.history(run.id)[2]
    assert retry.detail is not None
    assert retry.detail["error_type"] == "builtins.ConnectionError"
    assert effects_of(engine, run.id)["transforming"] == 1


def test_spent_attempts_fail_with_reason_and_real_error(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """After the last attempt the run fails with the state's reason and keeps the error."""
    run = engine.start("pipeline", {"fail": {"transforming": 9}})
    failed = harness.run(run.id)
    assert failed.status == "failed"
    assert failed.state == "transforming"
    assert failed.attempt == 3
    assert failed.failure_reason == "We could not transform the input"
    assert failed.failure_detail is not None
    assert failed.failure_detail["error_type"] == "builtins.ConnectionError"
    assert failed.failure_detail["error_message"] == "transforming attempt 3 lost its connection"
    assert "Traceback" in failed.failure_detail["traceback"]
    assert moves(engine, run.id)[-1] == ("transforming", "fail", "transforming", 3)
    assert "transforming" not in effects_of(engine, run.id)


def test_permanent_error_fails_at_once(engine: Engine, harness: WorkflowHarness) -> None:
    """PermanentError fails on the first attempt with its own reason."""
    run = engine.start("pipeline", {"permanent": "transforming"})
    failed = harness.run(run.id)
    assert failed.status == "failed"
    assert failed.attempt == 1
    assert failed.failure_reason == "the input cannot be transforming"
    assert failed.failure_detail is not None
    assert failed.failure_detail["error_type"] == "statewright.errors.PermanentError"


def test_undeclared_trigger_fails_naming_allowed_ones(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A handler returning an undeclared trigger fails the run and its writes roll back."""
    run = engine.start("pipeline", {"trigger": "teleported"})
    failed = harness.run(run.id)
    assert failed.status == "failed"
    assert failed.failure_reason == (
        "handler of state 'transforming' returned trigger 'teleported', which is not "
        "declared from 'transforming'; allowed: 'transformed'"
    )
    assert effects_of(engine, run.id) == {"fetching": 1}


def test_polls_do_not_touch_attempts(engine: Engine, harness: WorkflowHarness) -> None:
    """Polling re-enters the state with the same attempt; a retry before still counts once;
    the polls in a row fold into one history row with their count, first and last time."""
    run = engine.start("waiter", {"ready_after": 3, "every": 10, "fail": {"waiting": 1}})
    done = harness.run(run.id)
    assert done.status == "succeeded"
    assert moves(engine, run.id)[:4] == [
        (None, "start", "waiting", 0),
        ("waiting", "retry", "waiting", 1),
        ("waiting", "poll", "waiting", 2),
        ("waiting", "ready", "finishing", 2),
    ]
    [polls] = [h for h in engine.history(run.id) if h.trigger == "poll"]
    assert polls.polls == 3
    assert polls.at - polls.first_at == timedelta(seconds=20)


def test_poll_deadline_fails_the_run(engine: Engine, harness: WorkflowHarness) -> None:
    """Still polling when the deadline passes fails the run with the state's reason."""
    run = engine.start("waiter", {"ready_after": 1000, "every": 7})
    failed = harness.run(run.id)
    assert failed.status == "failed"
    assert failed.failure_reason == (
        "The work never got ready (still waiting when the 30s poll deadline passed)"
    )
    assert failed.attempt == 1
    history = engine.history(run.id)
    assert history[-1].at - history[0].at == timedelta(seconds=30)
    assert sum(h.polls for h in history) == 5
    assert [h.trigger for h in history] == ["start", "poll", "fail"]


def test_duplicate_delivery_is_dropped_and_counted(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """The same message delivered twice: the second is dropped and the effect happens once."""
    run = engine.start("pipeline")
    engine.relay.drain()
    message = harness.queue.messages.popleft()
    harness.deliver(message)
    harness.deliver(message)
    assert metrics.total("step.dropped", reason="stale_token", state="fetching") == 1
    assert harness.run(run.id).status == "succeeded"
    assert effects_of(engine, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}


def test_duplicate_of_a_running_step_is_dropped(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A copy that arrives while the step is claimed is dropped as a duplicate."""
    run = engine.start("pipeline")
    harness.deliver(harness.claim_next().message)
    assert metrics.total("step.dropped", reason="duplicate") == 1
    assert engine.get(run.id).attempt == 1


def test_crash_mid_step_is_redispatched_after_the_lease(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A step whose worker died is dispatched again when its lease expires; the attempt counted."""
    run = engine.start("pipeline")
    step = harness.claim_next().step  # and then the worker dies
    done = harness.run(run.id)
    assert done.status == "succeeded"
    history = moves(engine, run.id)
    assert history[1] == ("fetching", "redispatch", "fetching", 1)
    assert history[2] == ("fetching", "fetched", "transforming", 2)
    lease = timedelta(seconds=step.time_limit + HARD_LIMIT_MARGIN + engine.settings.lease_grace)
    redispatch = engine.history(run.id)[1]
    assert redispatch.at - engine.history(run.id)[0].at > lease


def test_worker_lost_on_every_attempt_fails_the_run(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """When every attempt dies mid-step, the claim past the last one fails the run."""
    run = engine.start("pipeline")
    for _ in range(3):
        step = harness.claim_next().step  # and the worker dies, every time
        harness.clock.advance(step.time_limit + HARD_LIMIT_MARGIN + engine.settings.lease_grace + 1)
        assert engine.reaper.run_once() == 1
    failed = harness.run(run.id)
    assert failed.status == "failed"
    assert failed.failure_reason == (
        "We could not fetch the input (worker lost: none of 3 attempt(s) finished)"
    )
    assert failed.attempt == 3


def test_crash_between_commit_and_publish_is_relayed(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A message committed but never published is sent by the relay."""
    engine.publisher = None  # the process died after commit, before publishing
    run = engine.start("pipeline")
    with engine.db.sessions() as session:
        assert session.execute(select(OutboxMessage.task_name)).scalars().all() == [
            "pipeline.fetching"
        ]
    engine.publisher = harness.queue
    assert harness.queue.messages == type(harness.queue.messages)()
    assert engine.relay.run_once() == 1
    assert harness.run(run.id).status == "succeeded"
    with engine.db.sessions() as session:
        assert session.execute(select(OutboxMessage)).first() is None


class CommitCheckingPublisher:
    """Checks, through another connection, that what a message refers to is committed."""

    def __init__(self, url: str, forward: LocalQueue) -> None:
        self.other = create_engine(url)
        self.forward = forward
        self.seen: list[str] = []

    def publish(self, messages: Sequence[TaskMessage]) -> None:
        with self.other.connect() as connection:
            for message in messages:
                token = connection.execute(
                    select(WorkflowRun.token).where(WorkflowRun.id == message.kwargs["run_id"])
                ).scalar()
                assert token == message.kwargs["token"], "published before commit"
                self.seen.append(message.task_name)
        self.forward.publish(messages)


def test_no_task_is_published_before_its_commit(engine: Engine, harness: WorkflowHarness) -> None:
    """Every message is published only once its transition is visible to other connections."""
    checker = CommitCheckingPublisher(engine.settings.database_url, harness.queue)
    engine.publisher = checker
    run = engine.start("pipeline")
    assert harness.run(run.id).status == "succeeded"
    assert checker.seen == ["pipeline.fetching", "pipeline.transforming", "pipeline.storing"]
    checker.other.dispose()


def test_rolled_back_dispatch_never_runs(engine: Engine, harness: WorkflowHarness) -> None:
    """A task dispatched inside a transaction that rolls back is never published."""

    def change_of_mind() -> None:
        with engine.db.transaction() as session:
            engine.dispatcher.enqueue(session, "pipeline.fetching", kwargs={"run_id": "x"})
            raise RuntimeError("the caller changed its mind")

    with pytest.raises(RuntimeError):
        change_of_mind()
    assert harness.queue.published == []
    with engine.db.sessions() as session:
        assert session.execute(select(OutboxMessage)).first() is None


def test_dispatch_after_commit_of_a_plain_task(engine: Engine, harness: WorkflowHarness) -> None:
    """Any task enqueued in a transaction is published right after that transaction commits."""
    with engine.db.transaction() as session:
        engine.dispatcher.enqueue(session, "reports.prepare", kwargs={"org": 1}, queue="reports")
        assert harness.queue.published == []
    assert [(m.task_name, m.kwargs, m.queue) for m in harness.queue.published] == [
        ("reports.prepare", {"org": 1}, "reports")
    ]


def test_reaper_skips_runs_in_unknown_states(engine: Engine, harness: WorkflowHarness) -> None:
    """A run in a state this code has no step for is left alone; other runs are still reaped."""
    stranded = engine.start("pipeline")
    healthy = engine.start("pipeline")
    with engine.db.transaction() as session:
        run = session.get(WorkflowRun, stranded.id)
        assert run is not None
        run.state = "fetching_v0"
    engine.relay.drain()
    harness.queue.messages.clear()  # both messages lost
    harness.clock.advance(engine.settings.dispatch_timeout + 1)
    assert engine.reaper.run_once() == 1
    assert harness.run(healthy.id).status == "succeeded"
    assert engine.get(stranded.id).state == "fetching_v0"
