"""The statewright command line on the embedded default: output, refusals and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from statewright import Engine
from statewright.cli.common import waited_exit_code
from statewright.testing import WorkflowHarness
from tests.helpers import ROOT, cli_env, cli_process


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(f"sqlite:///{tmp_path / 'cli.db'}")


def test_commands_refuse_an_unmigrated_database(env: dict[str, str]) -> None:
    """Before `migrate`, run commands say what to do and exit 1."""
    result = cli_process("runs", "list", env=env)
    assert result.returncode == 1
    assert "run `statewright migrate` first" in result.stderr


def test_start_wait_list_show_and_history(env: dict[str, str]) -> None:
    """A run started with --wait completes; list, show and history print it as JSON."""
    assert cli_process("migrate", env=env).returncode == 0
    started = cli_process(
        "runs",
        "start",
        "onboarding",
        "--params",
        '{"email": "kim@example.com"}',
        "--wait",
        "--json",
        env=env,
    )
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    assert (run["status"], run["state"]) == ("succeeded", "active")
    listed = json.loads(cli_process("runs", "list", "--json", env=env).stdout)
    assert [r["id"] for r in listed] == [run["id"]]
    shown = json.loads(cli_process("runs", "show", run["id"], "--json", env=env).stdout)
    assert shown["history"][0]["trigger"] == "start"
    history = json.loads(cli_process("runs", "history", run["id"], "--json", env=env).stdout)
    assert history[-1]["to_state"] == "active"
    table = cli_process("runs", "list", env=env)
    assert run["id"] in table.stdout
    assert "succeeded" in table.stdout


def test_failed_run_exits_1(env: dict[str, str]) -> None:
    """--wait returns 1 when the run fails, and prints the reason."""
    cli_process("migrate", env=env)
    result = cli_process(
        "runs", "start", "onboarding", "--params", '{"email": "nobody"}', "--wait", env=env
    )
    assert result.returncode == 1
    assert "'nobody' is not an email address" in result.stdout


def test_refusals_exit_1_with_the_reason(env: dict[str, str]) -> None:
    """Operations the engine refuses exit 1 and say why."""
    cli_process("migrate", env=env)
    missing = cli_process("runs", "resume", "no-such-run", env=env)
    assert missing.returncode == 1
    assert "no run with id 'no-such-run'" in missing.stderr
    unknown = cli_process("runs", "start", "teleport", env=env)
    assert unknown.returncode == 1
    assert "unknown workflow 'teleport'; registered workflows:" in unknown.stderr


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    """Bad arguments are usage errors."""
    cli_process("migrate", env=env)
    bad_json = cli_process("runs", "start", "onboarding", "--params", "{not json", env=env)
    assert bad_json.returncode == 2
    assert "--params is not valid JSON" in bad_json.stderr
    assert cli_process("runs", "frobnicate", env=env).returncode == 2


def test_bad_configuration_is_named(env: dict[str, str]) -> None:
    """A bad setting fails with the variable and the allowed values."""
    result = cli_process("runs", "list", env={**env, "STATEWRIGHT_SILO_MODE": "edge"})
    assert result.returncode == 1
    assert "unknown silo mode 'edge'; allowed: monolith, control, region" in result.stderr


def test_workflows_lists_definitions(env: dict[str, str]) -> None:
    """The workflows command lists every registered workflow with its states."""
    rows = json.loads(cli_process("workflows", "--json", env=env).stdout)
    names = {row["name"]: row for row in rows}
    assert names["onboarding"]["states"] == [
        "provisioning",
        "verifying",
        "welcoming",
        "closed",
        "active",
    ]
    assert "pipeline" in names


def test_demo_relocates_a_sample(env: dict[str, str], tmp_path: Path) -> None:
    """`statewright demo` relocates a small sample end to end and writes the run's diagram."""
    result = cli_process(
        "demo", "--orgs", "2", "--users", "20", "--workdir", str(tmp_path / "demo"), env=env
    )
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert "project_teams" in result.stdout
    diagram = (tmp_path / "demo" / "relocation-run.mmd").read_text()
    assert "Class completed s_terminal" in diagram
    assert "statewright web" in result.stdout
    assert "http://127.0.0.1:8080" in result.stdout


def test_web_refuses_to_listen_beyond_loopback_without_credentials(env: dict[str, str]) -> None:
    """`statewright web --host 0.0.0.0` with no console credentials says what to set, exit 1."""
    assert cli_process("migrate", env=env).returncode == 0
    result = cli_process("web", "--host", "0.0.0.0", "--port", "1", env=env)
    assert result.returncode == 1
    assert "needs credentials: set STATEWRIGHT_CONSOLE_TOKEN" in result.stderr


def test_wait_exits_1_for_a_run_that_did_not_succeed(
    engine: Engine, harness: WorkflowHarness
) -> None:
    """`--wait` exits 1 for a failed or cancelled run, 0 for a succeeded or paused one."""
    succeeded = harness.run(engine.start("pipeline", {}).id)
    failed = harness.run(engine.start("pipeline", {"permanent": "storing"}).id)
    cancelled = engine.cancel(engine.start("pipeline", {}).id)
    paused = harness.run(engine.start("pipeline", {}, pause_at="storing").id)
    statuses = [r.status for r in (succeeded, failed, cancelled, paused)]
    assert statuses == ["succeeded", "failed", "cancelled", "paused"]
    assert [waited_exit_code(r) for r in (succeeded, failed, cancelled, paused)] == [0, 1, 1, 0]


def test_a_command_without_a_sentry_dsn_does_not_import_sentry(env: dict[str, str]) -> None:
    """With no STATEWRIGHT_SENTRY_DSN a command that builds an engine (`runs list`) never
    imports sentry-sdk, which would cost its start a tenth of a second."""
    assert cli_process("migrate", env=env).returncode == 0
    script = (
        "import sys\nfrom statewright.cli import main\nsys.argv = ['statewright', *sys.argv[1:]]\n"
        "try:\n    main()\nfinally:\n    print('sentry_sdk' in sys.modules, file=sys.stderr)\n"
    )
    env = {name: value for name, value in env.items() if name != "STATEWRIGHT_SENTRY_DSN"}
    result = subprocess.run(
        [sys.executable, "-c", script, "runs", "list", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr
    assert result.stderr.strip().splitlines()[-1] == "False"
