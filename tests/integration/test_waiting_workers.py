"""Waits and deadlines on real `celery worker` processes, a real relay, PostgreSQL and Redis:
the timers are outbox rows the relay sends when due, on the real clock."""

from __future__ import annotations

import time

from statewright import Engine
from tests.integration.conftest import ClusterFactory
from tests.sample_workflows import effect_counts


def triggers(engine: Engine, run_id: str) -> list[str]:
    return [h.trigger for h in engine.history(run_id)]


def settle(engine: Engine, run_id: str, timeout: float = 30.0) -> None:
    """Wait (real time) until the run's history stops growing for a second."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        count = len(engine.history(run_id))
        if count == seen:
            return
        seen = count
        time.sleep(1.0)


def test_waits_timeouts_signals_and_a_deadline_on_real_workers(
    make_cluster: ClusterFactory, redis_url: str
) -> None:
    """A wait left by its timeout, one left by a signal, and a deadline that passes while
    a step sleeps on a worker: the step's completion is fenced off, its write rolled back."""
    cluster = make_cluster(redis_url)
    cluster.worker(concurrency=2)
    cluster.relay()
    engine = cluster.engine
    unanswered = engine.start("callback")
    answered = engine.start("callback")
    late = engine.start("callback", {"sleep": {"calling": 5}}, deadline=1.5)
    for _ in range(200):
        if engine.get(answered.id).state == "listening":
            break
        time.sleep(0.05)
    engine.signal(answered.id, "answered", {"by": "ann"})
    assert engine.wait(answered.id, timeout=30).state == "done"
    started = time.monotonic()
    gave_up = engine.wait(unanswered.id, timeout=30)
    assert (gave_up.status, gave_up.state) == ("succeeded", "gave_up")
    assert triggers(engine, unanswered.id) == ["start", "called", "unanswered"]
    waited = engine.history(unanswered.id)
    assert (waited[2].at - waited[1].at).total_seconds() >= 2.0
    assert time.monotonic() - started < 20
    failed = engine.wait(late.id, timeout=30)
    assert (failed.status, failed.failure_reason) == ("failed", "The call ran out of time")
    assert triggers(engine, late.id) == ["start", "deadline"]
    settle(engine, late.id)  # the sleeping step finishes, and is fenced off
    with engine.db.sessions() as session:
        assert effect_counts(session, late.id) == {}
        assert effect_counts(session, answered.id) == {"calling": 1, "noting": 1}
    assert engine.get(late.id).status == "failed"
    # the fenced step sleeps on after the deadline: wait for its completion to be dropped
    deadline = time.monotonic() + 30
    while not cluster.worker_log_lines("message dropped") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.worker_log_lines("message dropped")
