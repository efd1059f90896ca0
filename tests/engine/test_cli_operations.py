"""Every run command through the real CLI on SQLite and PostgreSQL: output, refusals, codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.engine.test_cli import ROOT, cli


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    values = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": database_url,
        "STATEWRIGHT_WORKFLOWS": "statewright.workflows,tests.sample_workflows",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    values.pop("STATEWRIGHT_BROKER_URL", None)
    return values


def ok(*args: str, env: dict[str, str]) -> dict[str, object]:
    result = cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def refused(*args: str, env: dict[str, str], says: str) -> None:
    result = cli(*args, env=env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert says in result.stderr


def test_operate_a_waiting_run(env: dict[str, str]) -> None:
    """pause, resume, signal, cancel and abort a run, with each refusal on the way; a
    signal to the paused run is kept and delivered when it resumes."""
    assert cli("migrate", env=env).returncode == 0
    run = ok("runs", "start", "approval", "--key", "change-7", env=env)
    again = ok("runs", "start", "approval", "--key", "change-7", env=env)
    assert again["id"] == run["id"]
    run_id = str(run["id"])
    refused(
        "runs",
        "signal",
        run_id,
        "applied",
        env=env,
        says="where signal 'applied' is not declared; allowed: 'approved', 'rejected'",
    )
    assert ok("runs", "pause", run_id, env=env)["status"] == "paused"
    refused("runs", "pause", run_id, env=env, says="is paused; only a run that is running")
    kept = ok("runs", "signal", run_id, "approved", "--data", '{"by": "kim"}', env=env)
    assert (kept["status"], [s["trigger"] for s in kept["kept_signals"]]) == (  # type: ignore[attr-defined]
        "paused",
        ["approved"],
    )
    moved = ok("runs", "resume", run_id, env=env)
    assert (moved["status"], moved["state"], moved["context"]) == (
        "running",
        "applying",
        {"by": "kim"},
    )
    refused("runs", "resume", run_id, env=env, says="is running; only a run that is paused")
    refused(
        "runs",
        "pause",
        run_id,
        "--at",
        "applied",
        env=env,
        says="cannot pause at 'applied': applied is a final state",
    )
    assert ok("runs", "cancel", run_id, env=env)["status"] == "cancelled"
    assert ok("runs", "cancel", run_id, env=env)["status"] == "cancelled"  # already: no change
    refused("runs", "abort", run_id, env=env, says="is cancelled (it has finished)")
    refused("runs", "redrive", run_id, env=env, says="only a run that is failed can be redriven")
    history = json.loads(cli("runs", "history", run_id, "--json", env=env).stdout)
    assert [h["trigger"] for h in history] == ["start", "pause", "resume", "approved", "cancel"]
    bad_data = cli("runs", "signal", run_id, "approved", "--data", "[1]", env=env)
    assert bad_data.returncode == 2


def test_fail_show_redrive_replay_and_draw(env: dict[str, str], tmp_path: Path) -> None:
    """A failed run shows its reason and error, redrives, replays, exports and draws."""
    cli("migrate", env=env)
    failed = cli(
        "runs",
        "start",
        "pipeline",
        "--params",
        '{"permanent": "storing"}',
        "--wait",
        "--json",
        env=env,
    )
    assert failed.returncode == 1
    run = json.loads(failed.stdout)
    run_id = run["id"]
    assert run["failure_reason"] == "the input cannot be storing"
    shown = ok("runs", "show", run_id, env=env)
    assert shown["failure_detail"]["error_type"] == "statewright.errors.PermanentError"  # type: ignore[index]
    table = cli("runs", "show", run_id, env=env).stdout
    assert "the input cannot be storing" in table
    assert "transformed" in table
    listed = json.loads(cli("runs", "list", "--status", "failed", "--json", env=env).stdout)
    assert [r["id"] for r in listed] == [run_id]
    lost = cli("runs", "list", "--status", "lost", env=env)
    assert lost.returncode == 2
    assert "'lost' is not one of 'running', 'paused', 'succeeded', 'failed', 'cancelled'" in (
        lost.stderr
    )
    redriven = ok("runs", "redrive", run_id, env=env)
    assert (redriven["status"], redriven["state"], redriven["attempt"]) == ("running", "storing", 0)
    export = tmp_path / "history.json"
    assert cli("runs", "export", run_id, "-o", str(export), env=env).returncode == 0
    replayed = cli("replay", "--file", str(export), "--json", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)[0]["ok"] is True
    assert cli("replay", run_id, env=env).returncode == 0
    drawn = cli("diagram", "--run", run_id, "--format", "dot", env=env)
    assert drawn.returncode == 0
    assert "transforming -> storing [label=transformed color=blue]" in drawn.stdout
    assert cli("diagram", "nope", env=env).returncode == 1
    assert cli("diagram", env=env).returncode == 2


def test_unknown_run_everywhere(env: dict[str, str]) -> None:
    """Every command that takes a run id names an unknown one and exits 1."""
    cli("migrate", env=env)
    for command in (
        ["runs", "show"],
        ["runs", "history"],
        ["runs", "pause"],
        ["runs", "resume"],
        ["runs", "cancel"],
        ["runs", "abort"],
        ["runs", "redrive"],
        ["runs", "export"],
        ["replay"],
    ):
        refused(*command, "feedface", env=env, says="no run with id 'feedface'")
