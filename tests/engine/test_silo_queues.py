"""Silos and queues: each silo's workers consume its own queues, tasks land on the queue
they declare, and an engine's settings govern the shared tasks of its process."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from statewright import Engine, Settings, SiloLimitError, SiloMode
from statewright.celery_app import silo_queues
from statewright.cli.app import app as cli_app
from statewright.errors import UnknownTaskError
from statewright.testing import captured_queue
from tests.task_workflows import ROUTED_QUEUE, Notices, Silos, regional, routed


def engine_in(sqlite_url: str, mode: SiloMode) -> Engine:
    return Engine(Settings(database_url=sqlite_url, silo_mode=mode), [Notices(), Silos()])


def test_each_silo_consumes_only_its_own_queues(sqlite_url: str) -> None:
    """A region worker consumes the default queue and the region queue, never the control
    queue; a control worker the reverse; a monolith all of them."""
    queues = {}
    for mode in SiloMode:
        engine = engine_in(sqlite_url, mode)
        queues[mode] = set(silo_queues(engine.celery, mode))
        engine.close()
    assert {"statewright", "statewright.region"} <= queues[SiloMode.REGION]
    assert "statewright.control" not in queues[SiloMode.REGION]
    assert {"statewright", "statewright.control"} <= queues[SiloMode.CONTROL]
    assert "statewright.region" not in queues[SiloMode.CONTROL]
    assert queues[SiloMode.MONOLITH] >= queues[SiloMode.REGION] | queues[SiloMode.CONTROL]
    assert ROUTED_QUEUE in queues[SiloMode.MONOLITH]


def test_outbox_sends_each_task_to_the_queue_it_declares(sqlite_url: str) -> None:
    """Tasks enqueued through the outbox go to their declared queue, or to their silo's
    queue when they declare none; the low-level dispatcher resolves it too."""
    engine = engine_in(sqlite_url, SiloMode.MONOLITH)
    engine.use_celery_publisher()
    with captured_queue(engine) as queue, engine.db.transaction() as session:
        engine.enqueue(session, "silos.control_only", {"run_id": "r"})
        engine.enqueue(session, "silos.region_only", {"run_id": "r"})
        engine.enqueue(session, "tests.routed", {"n": 1})
        engine.enqueue(session, "notices.notify", {"run_id": "r", "n": 0})
    assert [m.queue for m in queue.published] == [
        "statewright.control",
        "statewright.region",
        ROUTED_QUEUE,
        "statewright",
    ]
    engine.close()


def test_enqueueing_an_unknown_task_is_refused(sqlite_url: str) -> None:
    """A task name nobody registered is refused at enqueue, by name, and nothing is written."""
    engine = engine_in(sqlite_url, SiloMode.MONOLITH)
    with (
        pytest.raises(UnknownTaskError, match=r"no task named 'tests\.nowhere'"),
        engine.db.transaction() as session,
    ):
        engine.enqueue(session, "tests.nowhere", {})
    assert engine.pending_tasks("r") == []
    engine.close()


def test_settings_silo_mode_governs_direct_calls_of_shared_tasks(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared instrumented task called directly obeys the silo mode of the engine the
    process built (Settings), not only STATEWRIGHT_SILO_MODE."""
    monkeypatch.delenv("STATEWRIGHT_SILO_MODE", raising=False)
    engine = engine_in(sqlite_url, SiloMode.CONTROL)
    with pytest.raises(SiloLimitError, match=r"'tests\.regional' may run only in silo mode region"):
        regional()
    with pytest.raises(SiloLimitError):
        regional.delay()
    engine.close()
    region = engine_in(sqlite_url, SiloMode.REGION)
    assert regional() == "ran"
    region.close()


def test_shared_tasks_publish_through_the_engine_app(sqlite_url: str) -> None:
    """``delay`` of a shared task, in a process that built an engine, uses that engine's
    Celery app (its broker), not Celery's default app."""
    engine = Engine(
        Settings(database_url=sqlite_url, broker_url="redis://127.0.0.1:6379/5"), [Notices()]
    )
    assert routed.app is engine.celery
    assert routed.app.conf.broker_url == "redis://127.0.0.1:6379/5"
    engine.close()


def test_worker_queues_option_refuses_an_empty_name() -> None:
    """`statewright worker --queues 'a,,b'` names the bad value and exits 2."""
    result = CliRunner().invoke(cli_app, ["worker", "--queues", "a,,b"])
    assert result.exit_code == 2
    assert "names an empty queue" in result.output
