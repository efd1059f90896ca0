"""The embedded default: a real Celery worker in this process, on SQLite, with real time."""

from __future__ import annotations

import time

from statewright import EmbeddedWorker, Engine, Settings
from tests.sample_workflows import WORKFLOWS, effect_counts


def embedded_engine(url: str) -> Engine:
    return Engine(Settings(database_url=url), WORKFLOWS)


def test_embedded_worker_runs_a_workflow(sqlite_url: str) -> None:
    """With no broker configured, the embedded worker runs a run to completion."""
    engine = embedded_engine(sqlite_url)
    with EmbeddedWorker(engine):
        run = engine.start("pipeline")
        done = engine.wait(run.id, timeout=30)
    assert done.status == "succeeded"
    assert [h.trigger for h in engine.history(run.id)] == [
        "start",
        "fetched",
        "transformed",
        "stored",
    ]
    engine.close()


def test_real_countdown_between_retries(sqlite_url: str) -> None:
    """Retries wait their real backoff (2s, then 4s) through durable timers."""
    engine = embedded_engine(sqlite_url)
    with EmbeddedWorker(engine):
        run = engine.start("pipeline", {"fail": {"transforming": 2}})
        done = engine.wait(run.id, timeout=40)
    assert done.status == "succeeded"
    history = engine.history(run.id)
    retries = [h for h in history if h.trigger == "retry"]
    finished = next(h for h in history if h.trigger == "transformed")
    assert (retries[1].at - retries[0].at).total_seconds() >= 2.0
    assert (finished.at - retries[1].at).total_seconds() >= 4.0
    engine.close()


def test_run_survives_stopping_and_restarting_the_worker(sqlite_url: str) -> None:
    """A run in progress when the worker stops finishes after a new worker starts."""
    engine = embedded_engine(sqlite_url)
    with EmbeddedWorker(engine):
        run = engine.start("waiter", {"ready_after": 6, "every": 0.5})
        deadline = time.monotonic() + 20
        while engine.get(run.id).polls < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    stopped = engine.get(run.id)
    assert (stopped.status, stopped.state) == ("running", "waiting")
    engine.close()

    restarted = embedded_engine(sqlite_url)
    with EmbeddedWorker(restarted):
        done = restarted.wait(run.id, timeout=30)
    assert done.status == "succeeded"
    with restarted.db.sessions() as session:
        assert effect_counts(session, run.id) == {"finishing": 1}
    restarted.close()


def test_messages_from_another_process_wait_for_the_worker(sqlite_url: str) -> None:
    """An embedded engine without its worker leaves messages for the worker's relay."""
    client = embedded_engine(sqlite_url)
    run = client.start("pipeline")
    time.sleep(0.3)
    assert client.get(run.id).attempt == 0  # nothing ran: no worker yet
    worker_engine = embedded_engine(sqlite_url)
    with EmbeddedWorker(worker_engine):
        assert client.wait(run.id, timeout=30).status == "succeeded"
    client.close()
    worker_engine.close()
