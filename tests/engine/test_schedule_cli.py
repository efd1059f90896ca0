"""`statewright schedules` and `statewright runs purge` through the real CLI: output,
refusals and exit codes (the operations behind them are tested on both databases in
test_scheduler.py and test_retention.py)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from statewright import Engine, Settings
from statewright.models.engine import WorkflowRun
from tests.engine.test_cli import ROOT, cli
from tests.sample_workflows import WORKFLOWS


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    values = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": database_url,
        "STATEWRIGHT_WORKFLOWS": "tests.sample_workflows,tests.scheduled_workflows",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    values.pop("STATEWRIGHT_BROKER_URL", None)
    return values


def ok(*args: str, env: dict[str, str]) -> Any:
    result = cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(*args: str, env: dict[str, str], says: str, code: int = 1) -> None:
    result = cli(*args, env=env)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert says in " ".join(result.stderr.split()), result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schedules_list_add_pause_resume_trigger_remove(env: dict[str, str]) -> None:
    """migrate syncs declared schedules; an operator adds, pauses, resumes, triggers and
    removes one; every refusal names the bad value and exits 1."""
    migrated = cli("migrate", env=env)
    assert "2 declared schedule(s) added, changed or removed" in migrated.stdout
    listed = {s["name"]: s for s in ok("schedules", env=env)}
    nightly = listed["tick.nightly"]
    assert (nightly["missed"], nightly["catch_up_limit"], nightly["paused"]) == (
        "catch_up",
        3,
        False,
    )
    assert nightly["next_fire_at"].endswith(("T00:00:00+00:00", "T01:00:00+00:00"))
    added = ok(
        "schedules", "add", "export", "pipeline", "0 2 * * *", "--timezone", "Europe/Berlin",
        "--params", '{"to": "s3"}', env=env,
    )  # fmt: skip
    assert (added["declared"], added["params"], added["missed"]) == (False, {"to": "s3"}, "skip")
    table = cli("schedules", env=env).stdout
    for shown in ("tick.nightly", "catch_up ≤3", "export"):
        assert shown in table
    assert ok("schedules", "pause", "export", env=env)["paused"] is True
    assert ok("schedules", "resume", "export", env=env)["paused"] is False
    run = ok("schedules", "trigger", "tick.nightly", env=env)
    assert run["params"] == {"kind": "nightly"}
    assert run["idempotency_key"].startswith("schedule:tick.nightly:manual:")
    refused(
        "schedules",
        "add",
        "x",
        "pipeline",
        "0 25 * * *",
        env=env,
        says="cron expression '0 25 * * *' is not valid (Bad hour)",
    )
    refused(
        "schedules",
        "add",
        "x",
        "payroll",
        "@daily",
        env=env,
        says="unknown workflow 'payroll'; registered workflows:",
    )
    refused(
        "schedules",
        "pause",
        "weekly",
        env=env,
        says="no schedule named 'weekly'; schedules: 'export', 'tick.every-second', 'tick.nightly'",
    )
    refused(
        "schedules",
        "remove",
        "tick.nightly",
        env=env,
        says="declared by workflow 'tick' in code; remove it there, or pause it",
    )
    removed = cli("schedules", "remove", "export", env=env)
    assert "removed schedule export; the runs it started are kept" in removed.stdout


def test_runs_purge(env: dict[str, str], database_url: str) -> None:
    """runs purge counts with --dry-run, deletes in batches, leaves recent and running runs,
    and refuses an age it cannot read (exit 2)."""
    assert cli("migrate", env=env).returncode == 0
    engine = Engine(Settings(database_url=database_url), WORKFLOWS)
    old = [engine.start("pipeline").id for _ in range(2)]
    recent = engine.start("pipeline").id
    running = engine.start("pipeline").id
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with engine.db.transaction() as session:
        for run, when in [(old[0], long_ago), (old[1], long_ago), (recent, datetime.now(UTC))]:
            session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run)
                .values(status="succeeded", finished_at=when)
            )
    dry = ok("runs", "purge", "--older-than", "30d", "--dry-run", env=env)
    assert (dry["runs"], dry["history"], dry["dry_run"]) == (2, 2, True)
    done = cli("runs", "purge", "--older-than", "30d", "--batch", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert "deleted 2 run(s) and 2 history row(s) in 2 batch(es)" in done.stdout
    assert {r.id for r in engine.list()} == {recent, running}
    says = "--older-than '30' is not an age; use a positive whole number and a unit: 30d"
    refused("runs", "purge", "--older-than", "30", env=env, says=says, code=2)
    engine.close()
