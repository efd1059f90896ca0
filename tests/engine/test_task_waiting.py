"""Plain tasks on the embedded default: a restarted worker sends what its predecessor lost,
and a command that waits for a run waits for the tasks the run dispatched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from statewright import EmbeddedWorker, Engine, Settings
from statewright.testing import captured_queue
from tests.sample_workflows import effect_counts
from tests.task_workflows import Notices

ROOT = Path(__file__).resolve().parents[2]


def wait_for_effect(engine: Engine, run_id: str, state: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.db.reads() as session:
            if effect_counts(session, run_id).get(state):
                return True
        time.sleep(0.1)
    return False


def test_embedded_worker_sends_tasks_lost_with_the_last_process(sqlite_url: str) -> None:
    """A task published to an in-memory queue that died with its process is sent again as
    soon as the next embedded worker starts, not after the dispatch timeout."""
    before = Engine(Settings(database_url=sqlite_url), [Notices()])
    with captured_queue(before) as lost, before.db.transaction() as session:
        before.enqueue(session, "notices.notify", {"run_id": "r1", "n": 0}, run_id="r1")
    assert [m.task_name for m in lost.published] == ["notices.notify"]
    before.close()

    after = Engine(Settings(database_url=sqlite_url), [Notices()])
    with EmbeddedWorker(after):
        assert wait_for_effect(after, "r1", "notice-0")
        assert after.wait_for_tasks("r1", timeout=10) == []
    after.close()


def test_start_wait_waits_for_the_tasks_the_run_dispatched(sqlite_url: str) -> None:
    """`runs start --wait` on the embedded default exits only once every task its run
    dispatched has run, and says so."""
    env = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": sqlite_url,
        "STATEWRIGHT_WORKFLOWS": "tests.task_workflows",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    env.pop("STATEWRIGHT_BROKER_URL", None)
    params = '{"count": 3, "task": {"sleep": 1.0}}'
    command = [str(Path(sys.executable).parent / "statewright"), "runs", "start", "notices"]
    result = subprocess.run(
        [*command, "--params", params, "--wait", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "every task the run dispatched has finished" in result.stderr
    engine = Engine(Settings(database_url=sqlite_url), [Notices()])
    (run,) = engine.list()
    with engine.db.reads() as session:
        counts = effect_counts(session, run.id)
    assert [counts.get(f"notice-{n}") for n in range(3)] == [1, 1, 1]
    assert engine.pending_tasks(run.id) == []
    engine.close()
