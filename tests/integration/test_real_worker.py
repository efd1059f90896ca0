"""The same engine under real `celery worker` processes, PostgreSQL and Redis or RabbitMQ."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete, select

from statewright.dispatch import TaskMessage
from statewright.models import OutboxMessage
from tests.integration.conftest import ClusterFactory
from tests.sample_workflows import effect_counts


@pytest.mark.parametrize("continue_for", ["1", "0"], ids=["continued", "message-per-step"])
def test_three_states_complete_on_real_workers(
    make_cluster: ClusterFactory, broker_url: str, continue_for: str
) -> None:
    """A run completes with exactly the expected history, its steps continued in process
    or each sent as a real broker message."""
    cluster = make_cluster(broker_url, STATEWRIGHT_CONTINUE_FOR=continue_for)
    cluster.worker()
    cluster.relay()
    engine = cluster.engine
    run = engine.start("pipeline")
    assert engine.wait(run.id, timeout=60).status == "succeeded"
    assert [(h.from_state, h.trigger, h.to_state) for h in engine.history(run.id)] == [
        (None, "start", "fetching"),
        ("fetching", "fetched", "transforming"),
        ("transforming", "transformed", "storing"),
        ("storing", "stored", "done"),
    ]
    with engine.db.sessions() as session:
        assert effect_counts(session, run.id) == {"fetching": 1, "transforming": 1, "storing": 1}
    deliveries = {line["task_id"] for line in cluster.worker_log_lines("step completed")}
    assert len(deliveries) == (1 if continue_for == "1" else 3)


@pytest.mark.long
def test_retries_wait_their_real_countdown(make_cluster: ClusterFactory, redis_url: str) -> None:
    """Backoff between attempts is honoured by the relay's durable timers (2s, then 4s)."""
    cluster = make_cluster(redis_url)
    cluster.worker()
    cluster.relay()
    engine = cluster.engine
    run = engine.start("pipeline", {"fail": {"fetching": 2}})
    assert engine.wait(run.id, timeout=60).status == "succeeded"
    history = engine.history(run.id)
    assert [h.trigger for h in history[:4]] == ["start", "retry", "retry", "fetched"]
    assert (history[2].at - history[1].at).total_seconds() >= 2.0
    assert (history[3].at - history[2].at).total_seconds() >= 4.0
    assert history[3].attempt == 3


def test_duplicate_broker_messages_apply_once(make_cluster: ClusterFactory, redis_url: str) -> None:
    """The same step message published three times: one effect, two drops in the logs."""
    cluster = make_cluster(redis_url)
    engine = cluster.engine
    engine.publisher = None  # keep the first message in the outbox so the test can copy it
    run = engine.start("brief")
    with engine.db.transaction() as session:
        row = session.execute(select(OutboxMessage)).scalar_one()
        message = TaskMessage.from_row(row)
        session.execute(delete(OutboxMessage))
    engine.use_celery_publisher()
    engine.publisher.publish([message, message, message])  # type: ignore[union-attr]
    cluster.worker(concurrency=3)
    assert engine.wait(run.id, timeout=60).status == "succeeded"
    with engine.db.sessions() as session:
        assert effect_counts(session, run.id) == {"working": 1}
    deadline = time.monotonic() + 10
    while cluster.worker_logs().count('"message dropped"') < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.worker_logs().count('"message dropped"') == 2


@pytest.mark.long
def test_sigkilled_worker_mid_step_resumes_after_the_lease(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """A worker killed mid-step: the run completes after its lease expires; the attempt counted."""
    cluster = make_cluster(redis_url)
    first = cluster.worker()
    cluster.relay()
    engine = cluster.engine
    run = engine.start("brief", {"sleep": {"working": 30}, "sleep_attempts": 1})
    deadline = time.monotonic() + 30
    while engine.get(run.id).attempt < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.get(run.id).attempt == 1
    first.kill()
    killed_at = time.monotonic()
    cluster.worker()
    done = engine.wait(run.id, timeout=60)
    assert done.status == "succeeded"
    history = engine.history(run.id)
    assert [(h.trigger, h.attempt) for h in history] == [
        ("start", 0),
        ("redispatch", 1),
        ("worked", 2),
    ]
    assert history[1].detail == {"reason": "lease expired", "was_claimed": True}
    assert time.monotonic() - killed_at < 30
    with engine.db.sessions() as session:
        assert effect_counts(session, run.id) == {"working": 1}


def test_pickled_message_is_refused_by_a_real_worker(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """A pickle payload published straight to the broker is rejected and never executed."""
    import pickle

    from kombu import Connection

    from tests.conftest import TEST_QUEUE
    from tests.sample_workflows import effects

    cluster = make_cluster(redis_url)
    worker = cluster.worker()
    engine = cluster.engine
    body = (
        (),
        {"marker": "pickled"},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    )
    with Connection(redis_url) as connection:
        producer = connection.Producer(serializer="pickle")
        producer.publish(
            pickle.dumps(body),
            content_type="application/x-python-serialize",
            content_encoding="binary",
            routing_key=TEST_QUEUE,
            exchange="",
            headers={
                "task": "probe.look",
                "id": "pickled-1",
                "lang": "py",
                "argsrepr": "",
                "kwargsrepr": "",
            },
        )
    with engine.db.transaction() as session:  # a JSON message right behind it still runs
        engine.recorder.enqueue(session, "probe.look", kwargs={"marker": "json"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.db.reads() as session:
            seen = {row for row in session.execute(select(effects.c.run_id)).scalars()}
        if "json" in seen:
            break
        time.sleep(0.1)
    assert "json" in seen
    assert "pickled" not in seen
    assert "pickle" in worker.output().lower()
