"""Operations never wait for a running step: a second OS process runs a long step (it
reads the database, holds for ``HOLD`` seconds, then writes) while this one operates
on the run. Each operation returns in a fraction of the step's length, and an abort or
a signal fences the step off: its completion is refused and its writes roll back.

On SQLite this is what a handler's session taking the write lock at its first write
(not its first read) buys; on PostgreSQL it always held. Each test runs on both.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from statewright import Engine, RunInfo
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory
from tests.engine.edge_workflows import EDGE_WORKFLOWS, run_one_step
from tests.sample_workflows import effect_counts

#: How long the step holds between its first read and its write, in seconds.
HOLD = 4.0
#: Spawning the step's process and importing the engine can take a while on a busy machine.
STARTUP = 60.0


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine(EDGE_WORKFLOWS)


def effects_of(engine: Engine, run_id: str) -> dict[str, int]:
    with engine.db.sessions() as session:
        return effect_counts(session, run_id)


def during_the_step(
    engine: Engine, tmp_path: Path, operation: Callable[[RunInfo], Any]
) -> tuple[RunInfo, float]:
    """Start a run, run its `collecting` step in another process, and apply
    ``operation`` once that step is inside its handler; returns the run and how many
    seconds the operation took. Waits for the other process to finish."""
    inside = tmp_path / "inside"
    run = engine.start("review", {"hold": {"collecting": HOLD}, "inside_file": str(inside)})
    context = multiprocessing.get_context("spawn")
    url = engine.settings.database_url
    process = context.Process(
        target=run_one_step, args=(url, "review", "collecting", run.id, run.token)
    )
    process.start()
    try:
        deadline = time.monotonic() + STARTUP
        while not inside.exists():
            assert process.is_alive(), "the step's process died before its handler ran"
            assert time.monotonic() < deadline, "the step's handler never started"
            time.sleep(0.02)
        began = time.monotonic()
        operation(run)
        took = time.monotonic() - began
    finally:
        process.join(STARTUP + HOLD)
    assert process.exitcode == 0
    return run, took


def test_an_abort_returns_at_once_and_fences_the_running_step_off(
    engine: Engine, harness: WorkflowHarness, tmp_path: Path
) -> None:
    """An abort from another process returns in a fraction of the running step's length;
    the step's completion is then refused and its write rolled back."""
    run, took = during_the_step(engine, tmp_path, lambda r: engine.abort(r.id))
    assert took < HOLD / 4, f"abort waited {took:.1f}s for a {HOLD}s step"
    aborted = engine.get(run.id)
    assert (aborted.status, aborted.state) == ("failed", "collecting")
    assert [h.trigger for h in engine.history(run.id)] == ["start", "abort"]
    assert effects_of(engine, run.id) == {}


def test_a_signal_returns_at_once_and_fences_the_running_step_off(
    engine: Engine, harness: WorkflowHarness, tmp_path: Path
) -> None:
    """A signal moves the run while its step runs, without waiting for it; the step's
    completion is refused, and the run goes on from where the signal took it."""
    run, took = during_the_step(engine, tmp_path, lambda r: engine.signal(r.id, "skip"))
    assert took < HOLD / 4, f"signal waited {took:.1f}s for a {HOLD}s step"
    assert harness.run(run.id).status == "succeeded"
    assert [h.trigger for h in engine.history(run.id)] == ["start", "skip", "reviewed"]
    assert effects_of(engine, run.id) == {"reviewing": 1}


@pytest.mark.parametrize("operation", ["pause", "cancel"])
def test_a_pause_or_cancel_returns_at_once_and_applies_at_the_boundary(
    engine: Engine, harness: WorkflowHarness, tmp_path: Path, operation: str
) -> None:
    """A pause or cancel asked for while a step runs returns at once; the step finishes
    and its write lands, and the run stops before the next step."""
    run, took = during_the_step(engine, tmp_path, lambda r: getattr(engine, operation)(r.id))
    assert took < HOLD / 4, f"{operation} waited {took:.1f}s for a {HOLD}s step"
    stopped = harness.run(run.id)
    assert (stopped.status, stopped.state) == (
        "paused" if operation == "pause" else "cancelled",
        "reviewing",
    )
    assert effects_of(engine, run.id) == {"collecting": 1}


def test_a_start_returns_at_once_while_another_run_is_mid_step(
    engine: Engine, harness: WorkflowHarness, tmp_path: Path
) -> None:
    """Starting a run does not wait for another run's step; both runs complete."""
    started: list[RunInfo] = []
    run, took = during_the_step(
        engine, tmp_path, lambda r: started.append(engine.start("review", {}))
    )
    assert took < HOLD / 4, f"start waited {took:.1f}s for a {HOLD}s step"
    assert harness.run(run.id).status == "succeeded"
    assert harness.run(started[0].id).status == "succeeded"
    assert effects_of(engine, run.id) == {"collecting": 1, "reviewing": 1}
