"""The run commands a person meets first, through the real command line: waiting that
leaves other runs alone, JSON-only stdout, whole ids and prefixes, pages and keys."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import cli, cli_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The embedded default on a fresh SQLite file, with the test workflows."""
    return cli_env(f"sqlite:///{tmp_path / 'cli.db'}")


@pytest.fixture
def migrated(env: dict[str, str], sqlite_template: Path, tmp_path: Path) -> dict[str, str]:
    """``env`` on a migrated database (a copy of the session's migrated SQLite file)."""
    shutil.copy(sqlite_template, tmp_path / "cli.db")
    return env


def started(*args: str, env: dict[str, str]) -> dict[str, object]:
    result = cli("runs", "start", *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    run: dict[str, object] = json.loads(result.stdout)
    return run


def test_waiting_runs_only_the_awaited_run(migrated: dict[str, str]) -> None:
    """--wait runs its own run to the end, leaves another pending run untouched, and
    prints only JSON on stdout; `runs wait PREFIX` then runs the other one."""
    env = migrated
    params = '{"email": "%s", "verify_after_polls": 1, "poll_seconds": 0.05}'
    other = started("onboarding", "--params", params % "lee@example.com", env=env)
    waited = cli(
        "runs",
        "start",
        "onboarding",
        "--params",
        params % "kim@example.com",
        "--wait",
        "--json",
        env={**env, "STATEWRIGHT_LOG_LEVEL": "INFO"},
    )
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "succeeded"
    untouched = json.loads(cli("runs", "show", str(other["id"]), "--json", env=env).stdout)
    assert (untouched["status"], untouched["state"], untouched["attempt"]) == (
        "running",
        "provisioning",
        0,
    )
    assert [h["trigger"] for h in untouched["history"]] == ["start"]
    followed = cli("runs", "wait", str(other["id"])[:14], "--json", env=env)
    assert followed.returncode == 0, followed.stderr
    assert json.loads(followed.stdout)["status"] == "succeeded"


def test_list_prints_whole_ids_and_pages_on(migrated: dict[str, str]) -> None:
    """At 100 columns every id is printed whole on one line; a full page says how to get
    the next one, and --after continues without repeating a run."""
    env = {**migrated, "COLUMNS": "100"}
    ids = [str(started("pipeline", env=env)["id"]) for _ in range(3)]
    table = cli("runs", "list", env=env)
    assert table.returncode == 0
    for run_id in ids:
        assert any(run_id in line for line in table.stdout.splitlines()), table.stdout
    first = cli("runs", "list", "--limit", "2", "--json", env=env)
    page = [r["id"] for r in json.loads(first.stdout)]
    hint = re.search(r"statewright runs list --after ([0-9a-f]{32})", first.stderr)
    assert hint is not None
    assert hint.group(1) == page[-1]
    rest = json.loads(cli("runs", "list", "--after", page[-1][:16], "--json", env=env).stdout)
    assert sorted(page + [r["id"] for r in rest]) == sorted(ids)


def test_every_id_argument_takes_a_unique_prefix(migrated: dict[str, str]) -> None:
    """Operations accept a prefix; a shared prefix is refused listing the runs, an unknown
    one is named."""
    env = migrated
    one = str(started("approval", env=env)["id"])
    two = str(started("approval", env=env)["id"])
    # ids begin with their time: two started in the same instant share more of it
    prefix = next(one[:n] for n in range(10, len(one)) if not two.startswith(one[:n]))
    paused = cli("runs", "pause", prefix, "--json", env=env)
    assert json.loads(paused.stdout)["id"] == one
    assert json.loads(cli("runs", "history", prefix, "--json", env=env).stdout)
    shared = cli("runs", "cancel", one[:4], env=env)
    assert shared.returncode == 1
    assert f"run id prefix '{one[:4]}' is ambiguous" in shared.stderr
    assert one in shared.stderr
    assert two in shared.stderr
    unknown = cli("runs", "show", "fffff", env=env)
    assert unknown.returncode == 1
    assert "no run with id 'fffff'" in unknown.stderr


def test_runs_list_filters_by_business_key(migrated: dict[str, str]) -> None:
    """`runs list --key` returns the runs of one business key (onboarding's email)."""
    env = migrated
    kim = started("onboarding", "--params", '{"email": "kim@example.com"}', env=env)
    started("onboarding", "--params", '{"email": "lee@example.com"}', env=env)
    found = json.loads(cli("runs", "list", "--key", "kim@example.com", "--json", env=env).stdout)
    assert [(r["id"], r["business_key"]) for r in found] == [(kim["id"], "kim@example.com")]


def test_workflows_show_branches(env: dict[str, str]) -> None:
    """`statewright workflows` prints each branch of a state on its own line."""
    result = cli("workflows", env={**env, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    verifying = next(i for i, line in enumerate(lines) if line.startswith("│ verifying"))
    assert "├ verified" in lines[verifying]
    assert "welcoming" in lines[verifying]
    assert "└ closed" in lines[verifying + 1]
    edges = {(e["source"], e["trigger"], e["dest"]) for e in _workflow(env, "onboarding")}
    assert ("verifying", "closed", "closed") in edges


def _workflow(env: dict[str, str], name: str) -> list[dict[str, str]]:
    rows = json.loads(cli("workflows", "--json", env=env).stdout)
    edges: list[dict[str, str]] = next(r["edges"] for r in rows if r["name"] == name)
    return edges


def test_doctor_says_what_to_run(env: dict[str, str], tmp_path: Path) -> None:
    """doctor exits 1 naming `statewright migrate` before migrating, 0 after."""
    before = cli("doctor", "--json", env=env)
    assert before.returncode == 1
    database = next(c for c in json.loads(before.stdout) if c["name"] == "database")
    assert (database["outcome"], database["fix"]) == ("problem", "statewright migrate")
    cli("migrate", env=env)
    after = cli("doctor", env=env)
    assert after.returncode == 0, after.stdout
    assert "migrated to" in after.stdout


@pytest.mark.services
def test_doctor_finds_no_worker_on_a_broker(env: dict[str, str]) -> None:
    """With a broker and no worker, doctor reports the broker reachable and no worker."""
    from tests.conftest import require_service

    require_service("Redis", "127.0.0.1", 6379)
    cli("migrate", env=env)
    result = cli(
        "doctor", "--json", env={**env, "STATEWRIGHT_BROKER_URL": "redis://127.0.0.1:6379/15"}
    )
    assert result.returncode == 1
    found = {c["name"]: c for c in json.loads(result.stdout)}
    assert found["broker"]["outcome"] == "ok"
    assert found["workers"]["outcome"] == "problem"
    assert found["workers"]["fix"] == "statewright worker"


def test_cancel_at_and_clear_pause_take_a_prefix(migrated: dict[str, str]) -> None:
    """`runs cancel --at` and `runs clear-pause` resolve a prefix; show prints `cancel at`."""
    env = migrated
    run_id = str(started("pipeline", env=env)["id"])
    cancelling = cli("runs", "cancel", run_id[:12], "--at", "storing", "--json", env=env)
    assert cancelling.returncode == 0, cancelling.stderr
    assert json.loads(cancelling.stdout)["cancel_at"] == "storing"
    assert re.search(r"cancel at\s+storing", cli("runs", "show", run_id[:12], env=env).stdout)
    other = str(started("pipeline", "--pause-at", "storing", env=env)["id"])
    cleared = cli("runs", "clear-pause", other[:12], "--json", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert (json.loads(cleared.stdout)["id"], json.loads(cleared.stdout)["pause_at"]) == (
        other,
        None,
    )
