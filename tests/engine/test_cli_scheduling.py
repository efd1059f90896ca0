"""``runs cancel --at`` and ``runs clear-pause`` through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from statewright import Engine
from statewright.testing import WorkflowHarness
from tests.engine.test_cli import cli
from tests.engine.test_cli_operations import env, ok, refused

__all__ = ["env"]  # the fixture, shared


def test_cancel_at_and_clear_pause(
    env: dict[str, str], engine: Engine, harness: WorkflowHarness
) -> None:
    """The CLI schedules a cancel, schedules and clears a pause, and names bad states."""
    run_id = str(ok("runs", "start", "pipeline", env=env)["id"])
    assert ok("runs", "cancel", run_id, "--at", "storing", env=env)["cancel_at"] == "storing"
    assert ok("runs", "pause", run_id, "--at", "transforming", env=env)["pause_at"] == (
        "transforming"
    )
    assert re.search(r"cancel at\s+storing", cli("runs", "show", run_id, env=env).stdout)
    cleared = ok("runs", "clear-pause", run_id, env=env)
    assert (cleared["pause_at"], cleared["pause_requested"]) == (None, False)
    refused("runs", "cancel", run_id, "--at", "done", env=env, says="done is a final state")
    refused(
        "runs",
        "pause",
        run_id,
        "--at",
        "no-such-state",
        env=env,
        says="unknown state 'no-such-state' in workflow 'pipeline'; states ahead: fetching, "
        "transforming, storing",
    )
    # a worker (here the test's own engine on the same database) takes it from there
    cancelled = harness.run(run_id)
    assert (cancelled.status, cancelled.state) == ("cancelled", "storing")
    assert ok("runs", "cancel", run_id, env=env)["status"] == "cancelled"
    refused("runs", "clear-pause", run_id, env=env, says="only a run that is running or paused")
    assert "clear-pause" in cli("runs", "--help", env=env).stdout
