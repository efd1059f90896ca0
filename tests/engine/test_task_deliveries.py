"""Plain tasks dispatched through the outbox are as durable as steps: a lost message or a
lost worker is sent again, a duplicate is dropped, and the task runs to completion once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from statewright import Engine, InMemoryMetrics
from statewright.deliveries import DeliverySuperseded
from statewright.models import OutboxMessage
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory
from tests.sample_workflows import effect_counts, record_effect
from tests.task_workflows import Notices


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def engine(make_engine: EngineFactory, seen: list[dict[str, Any]]) -> Engine:
    return make_engine([Notices(seen)])


def effects(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.reads() as session:
        return effect_counts(session, run_id)


def task_rows(engine: Engine) -> list[OutboxMessage]:
    with engine.db.reads() as session:
        statement = select(OutboxMessage).where(OutboxMessage.token.is_(None))
        return list(session.execute(statement).scalars())


def start_and_lose_the_task_message(engine: Engine, harness: WorkflowHarness, **params: Any) -> str:
    """Run the step, then drop the task message it published (a broker that lost it)."""
    run = engine.start("notices", params)
    assert harness.run(run.id).status == "succeeded"
    lost = [m for m in harness.queue.messages if m.task_name == "notices.notify"]
    assert lost, "the step published its task"
    harness.queue.messages.clear()
    return run.id


def test_lost_task_message_is_sent_again_and_runs_once(
    engine: Engine, harness: WorkflowHarness, seen: list[dict[str, Any]]
) -> None:
    """A plain task whose broker message is lost is sent again after the dispatch timeout
    and runs once, as its first attempt."""
    run_id = start_and_lose_the_task_message(engine, harness)
    before = harness.clock.now()
    harness.run_all()
    assert effects(engine, run_id) == {"notice-0": 1, "notice-0-attempt-1": 1}
    waited = harness.deliveries[-1].at - before
    assert waited >= timedelta(seconds=engine.settings.dispatch_timeout)
    assert engine.metrics.total("task.redelivered") == 1  # type: ignore[attr-defined]
    assert task_rows(engine) == []


def test_each_copy_of_a_lost_task_waits_twice_as_long(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A task message lost again and again is sent after 1, 2, 4 dispatch timeouts."""
    start_and_lose_the_task_message(engine, harness)
    timeout = timedelta(seconds=engine.settings.dispatch_timeout)
    sent_again = []
    for waited in range(1, 8):
        harness.clock.advance(timeout + timedelta(milliseconds=1))
        if engine.relay.drain():
            sent_again.append(waited)
            harness.queue.messages.clear()
    assert sent_again == [1, 3, 7]


def test_task_lost_with_its_worker_runs_again_after_its_lease(
    engine: Engine, harness: WorkflowHarness, seen: list[dict[str, Any]]
) -> None:
    """A task whose worker took it and died is sent again when its lease ends; the next
    delivery knows it is a redelivery and has the same idempotency key."""
    run_id = start_and_lose_the_task_message(engine, harness)
    (row,) = task_rows(engine)
    claimed = engine.deliveries.claim(row.id, row.task_name, time_limit=9, max_attempts=4)
    assert claimed is not None
    assert claimed.attempt == 1  # ... and the worker dies here
    harness.run_all()
    assert effects(engine, run_id) == {"notice-0": 1, "notice-0-attempt-2": 1}
    assert seen == [{"n": 0, "attempt": 2, "key": claimed.idempotency_key}]


def test_duplicate_of_a_finished_task_is_dropped(
    engine: Engine, harness: WorkflowHarness, seen: list[dict[str, Any]]
) -> None:
    """A second copy of a task's message, delivered after the task finished, does nothing."""
    run = engine.start("notices")
    harness.run(run.id)
    message = next(m for m in harness.queue.messages if m.task_name == "notices.notify")
    harness.run_all()
    harness.deliver(message)
    assert effects(engine, run.id) == {"notice-0": 1, "notice-0-attempt-1": 1}
    assert len(seen) == 1
    assert engine.metrics.total("task.dropped") == 1  # type: ignore[attr-defined]


def test_copy_of_a_running_task_is_dropped(engine: Engine, harness: WorkflowHarness) -> None:
    """A copy delivered while another worker holds the task is dropped as a duplicate."""
    start_and_lose_the_task_message(engine, harness)
    (row,) = task_rows(engine)
    assert engine.deliveries.claim(row.id, row.task_name, time_limit=9, max_attempts=4)
    assert engine.deliveries.claim(row.id, row.task_name, time_limit=9, max_attempts=4) is None
    metrics = engine.metrics
    assert isinstance(metrics, InMemoryMetrics)
    assert [s.tags["reason"] for s in metrics.samples if s.name == "task.dropped"] == ["duplicate"]


def test_done_mark_of_a_superseded_delivery_rolls_its_writes_back(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A delivery that outlived its lease, after a newer one finished the task, cannot commit
    its writes: its done mark raises and the transaction rolls back."""
    run_id = start_and_lose_the_task_message(engine, harness)
    (row,) = task_rows(engine)
    slow = engine.deliveries.claim(row.id, row.task_name, time_limit=9, max_attempts=4)
    assert slow is not None
    harness.run_all()  # the lease ends, a copy runs and finishes the task
    with engine.db.sessions() as session, session.begin():
        record_effect(session, run_id, "notice-0")
        with pytest.raises(DeliverySuperseded):
            slow.done(session)
        session.rollback()
    assert effects(engine, run_id)["notice-0"] == 1


def test_task_retries_are_durable_timers(
    engine: Engine, harness: WorkflowHarness, seen: list[dict[str, Any]]
) -> None:
    """A task that asks to be retried is due again at its retry time from its outbox row,
    counting attempts, until it succeeds once."""
    run = engine.start("notices", {"task": {"fail": 2}})
    started = harness.clock.now()
    harness.run_all()
    assert effects(engine, run.id) == {"notice-0": 1, "notice-0-attempt-3": 1}
    assert [s["attempt"] for s in seen] == [1, 2, 3]
    assert len({s["key"] for s in seen}) == 1
    assert harness.deliveries[-1].at - started >= timedelta(seconds=60)  # two 30 s delays
    assert task_rows(engine) == []


def test_task_gives_up_after_its_max_retries(engine: Engine, harness: WorkflowHarness) -> None:
    """A task failing on every attempt gives up after its own max_retries: its row goes and
    nothing is sent again."""
    run = engine.start("notices", {"task": {"fail": 99}})
    harness.run(run.id)
    with pytest.raises(ConnectionError, match="attempt 4"):  # three retries, then it gives up
        harness.run_all()
    assert harness.run_all() == 0
    assert effects(engine, run.id) == {}
    assert engine.metrics.total("task.gave_up") == 1  # type: ignore[attr-defined]
    assert task_rows(engine) == []


def test_finished_run_keeps_its_pending_tasks(engine: Engine, harness: WorkflowHarness) -> None:
    """A run that finishes does not take the tasks its steps dispatched with it; they are
    listed as the run's pending tasks until they finish."""
    run_id = start_and_lose_the_task_message(engine, harness, count=2)
    assert [p.task_name for p in engine.pending_tasks(run_id)] == ["notices.notify"] * 2
    harness.run_all()
    assert engine.pending_tasks(run_id) == []
    assert effects(engine, run_id)["notice-1"] == 1


def test_a_resend_not_yet_committed_is_taken_not_dropped(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A re-sent task that arrives before the relay commits its row as unclaimed waits for
    that commit and is taken, instead of being dropped as a duplicate of the lost one."""
    start_and_lose_the_task_message(engine, harness)
    (lost,) = task_rows(engine)
    with engine.db.transaction() as session:  # a worker took it, then died
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == lost.id).values(claimed=True)
        )
    taken: list[object] = []
    with engine.db.engine.connect() as relay:  # the relay, mid re-send: row locked, unclaimed
        relay.execute(
            update(OutboxMessage).where(OutboxMessage.id == lost.id).values(claimed=False)
        )
        worker = threading.Thread(
            target=lambda: taken.append(
                engine.deliveries.claim(lost.id, lost.task_name, time_limit=None, max_attempts=None)
            )
        )
        worker.start()
        worker.join(0.5)
        assert worker.is_alive(), "the claim waits for the relay's commit"
        relay.commit()
    worker.join(30)
    (delivery,) = taken
    assert delivery is not None
    assert delivery.attempt == lost.attempts + 1
