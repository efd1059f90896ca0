"""After-commit dispatch: savepoints, partial publishing, id reuse and stale timers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select

from statewright import Engine, InMemoryMetrics
from statewright.dispatch import TaskMessage
from statewright.models import OutboxMessage
from statewright.testing import LocalQueue, WorkflowHarness


def outbox(engine: Engine) -> list[OutboxMessage]:
    with engine.db.reads() as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def test_released_savepoint_waits_for_the_real_commit(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """A message enqueued in a savepoint is not published when the savepoint is released."""
    with engine.db.sessions() as session:
        session.begin()
        with session.begin_nested():
            engine.dispatcher.enqueue(session, "plain.task", kwargs={"n": 1})
        assert harness.queue.published == []
        session.rollback()
    assert harness.queue.published == []
    assert outbox(engine) == []


def test_rolled_back_savepoint_keeps_the_outer_messages(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Rolling back a savepoint drops its messages and keeps the outer transaction's."""
    with engine.db.sessions() as session, session.begin():
        engine.dispatcher.enqueue(session, "plain.outer", kwargs={})
        nested = session.begin_nested()
        engine.dispatcher.enqueue(session, "plain.inner", kwargs={})
        nested.rollback()
    assert [m.task_name for m in harness.queue.published] == ["plain.outer"]
    # a plain task's row stays as its lease, published once, until the task finishes
    assert [(row.task_name, row.sends) for row in outbox(engine)] == [("plain.outer", 1)]


class FailsAfter(LocalQueue):
    """A broker that accepts ``limit`` messages and then goes down."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def publish(self, messages: Sequence[TaskMessage]) -> int:
        accepted = list(messages[: max(self.limit - len(self.published), 0)])
        super().publish(accepted)
        return len(accepted)


def test_partial_publish_keeps_only_the_unsent_rows(
    engine: Engine, metrics: InMemoryMetrics
) -> None:
    """When the broker fails midway, sent rows wait their dispatch timeout and unsent ones
    are due for the relay at once."""
    broker = FailsAfter(2)
    engine.publisher = broker
    with engine.db.transaction() as session:
        for n in range(4):
            engine.dispatcher.enqueue(session, "plain.task", kwargs={"n": n})
    assert [m.kwargs["n"] for m in broker.published] == [0, 1]
    assert [(row.kwargs["n"], row.sends) for row in outbox(engine)] == [
        (0, 1),
        (1, 1),
        (2, 0),
        (3, 0),
    ]
    assert metrics.total("outbox.publish_failed") == 2
    broker.limit = 10
    engine.clock.advance(1)  # type: ignore[attr-defined]
    assert engine.relay.drain() == 2
    assert [m.kwargs["n"] for m in broker.published] == [0, 1, 2, 3]


def test_outbox_ids_are_never_reused(engine: Engine, harness: WorkflowHarness) -> None:
    """A new row never takes the id of one already sent, so a late delete cannot hit it."""
    seen = []
    for n in range(3):
        with engine.db.transaction() as session:
            row = engine.dispatcher.enqueue(session, "plain.step", kwargs={"n": n}, token=1)
            session.flush()
            seen.append(row.id)
        assert outbox(engine) == []
    assert seen == sorted(set(seen))


def test_pausing_drops_the_waiting_timer(engine: Engine, harness: WorkflowHarness) -> None:
    """A paused run's poll timer is removed, so after resume only the new message counts."""
    run = engine.start("waiter", {"ready_after": 2, "every": 10})
    harness.step()
    assert [row.run_id for row in outbox(engine)] == [run.id]
    engine.pause(run.id)
    assert outbox(engine) == []
    engine.resume(run.id)
    assert harness.run(run.id).status == "succeeded"


def test_backlog_does_not_make_messages_stale(engine: Engine, harness: WorkflowHarness) -> None:
    """A message late past the dispatch timeout is sent again with the same token; either copy
    runs the step, the other is dropped."""
    run = engine.start("pipeline")
    engine.relay.drain()
    late = harness.queue.messages.popleft()  # stuck behind a backlog
    harness.clock.advance(timedelta(seconds=engine.settings.dispatch_timeout + 1))
    assert engine.reaper.run_once() == 1
    engine.relay.drain()
    again = harness.queue.messages.popleft()
    assert again.kwargs == late.kwargs
    harness.deliver(late)
    harness.deliver(again)
    assert engine.metrics.total("step.dropped") == 1  # type: ignore[attr-defined]
    assert harness.run(run.id).status == "succeeded"


def test_a_message_sent_again_waits_twice_as_long_each_time(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """Each copy the reaper sends of one message waits twice as long for a worker as the
    copy before, so a long backlog holds a few copies of a message, not one per timeout."""
    timeout = timedelta(seconds=engine.settings.dispatch_timeout)
    run = engine.start("pipeline")
    engine.relay.drain()
    harness.queue.messages.clear()  # lost, or stuck behind a backlog
    sent_again = []
    for waited in range(1, 16):  # fifteen dispatch timeouts (and a second), one at a time
        harness.clock.advance(timeout + timedelta(seconds=1))
        if engine.reaper.run_once():
            sent_again.append(waited)
            engine.relay.drain()
            harness.queue.messages.clear()
    # copies after 1, then 1 + 2, then 1 + 2 + 4, then 1 + 2 + 4 + 8 timeouts
    assert sent_again == [1, 3, 7, 15]
    copies = [h.detail for h in engine.history(run.id) if h.trigger == "redispatch"]
    assert [d["copy"] for d in copies if d] == [1, 2, 3, 4]
    assert harness.run(run.id).status == "succeeded"  # the fifth copy, after 16 more


def test_deferred_deletes_keep_rows_from_the_relay_until_swept(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """With a delete delay, published step rows stay in the outbox, the relay skips them,
    and the sweeper deletes them together."""
    engine.dispatcher.delete_delay = 60.0  # the sweeper sleeps: only flush_deletes clears
    with engine.db.sessions() as session, session.begin():
        for n in range(3):
            engine.dispatcher.enqueue(session, "plain.step", kwargs={"n": n}, token=1)
    assert len(harness.queue.published) == 3
    rows = outbox(engine)
    assert len(rows) == 3
    assert engine.dispatcher.in_flight() == {r.id for r in rows}
    assert engine.relay.run_once() == 0
    assert engine.dispatcher.flush_deletes() == 3
    assert outbox(engine) == []
    assert engine.dispatcher.in_flight() == frozenset()


def test_deferred_deletes_are_retried_when_the_database_refuses(
    engine: Engine, harness: WorkflowHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed batch delete keeps its ids for the next sweep instead of forgetting them."""
    engine.dispatcher.delete_delay = 60.0
    with engine.db.sessions() as session, session.begin():
        engine.dispatcher.enqueue(session, "plain.step", kwargs={}, token=1)
    original = engine.dispatcher._delete

    def refuse(ids: Sequence[int]) -> None:
        raise OSError("database went away")

    monkeypatch.setattr(engine.dispatcher, "_delete", refuse)
    assert engine.dispatcher.flush_deletes() == 0
    assert len(engine.dispatcher.in_flight()) == 1
    monkeypatch.setattr(engine.dispatcher, "_delete", original)
    assert engine.dispatcher.flush_deletes() == 1
    assert outbox(engine) == []
