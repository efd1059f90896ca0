"""The command line in a real pseudo-terminal, 100 columns wide, read back through a
terminal emulator: the live progress with log lines, whole ids, and Ctrl-C on a wait."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pexpect
import pyte
import pytest

from tests.helpers import CLI, ROOT, cli_process

COLUMNS, ROWS = 100, 200


@pytest.fixture
def env(tmp_path: Path, sqlite_template: Path) -> dict[str, str]:
    """A migrated embedded installation (a copy of the session's migrated SQLite file);
    logs at INFO, rendered for a terminal."""
    shutil.copy(sqlite_template, tmp_path / "cli.db")
    values = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "STATEWRIGHT_WORKFLOWS": "statewright.workflows,tests.sample_workflows",
        "PYTHONPATH": str(ROOT),
        "TERM": "xterm-256color",
    }
    for name in ("STATEWRIGHT_BROKER_URL", "COLUMNS", "LINES", "STATEWRIGHT_LOG_FORMAT"):
        values.pop(name, None)
    return values


def spawn(*args: str, env: dict[str, str]) -> pexpect.spawn:
    return pexpect.spawn(
        CLI, list(args), env=env, cwd=str(ROOT), dimensions=(ROWS, COLUMNS), timeout=120,
        encoding="utf-8",
    )  # fmt: skip


def screen_of(output: str) -> list[str]:
    """The terminal's lines once ``output`` has been drawn on it."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(output.replace("\n", "\r\n").replace("\r\r\n", "\r\n"))
    return [line.rstrip() for line in screen.display]


def test_live_progress_keeps_log_lines_above_it(env: dict[str, str]) -> None:
    """--wait draws one progress table at the end, with the whole run id on one line, and
    the log lines of its steps above it, never inside it."""
    params = '{"email": "kim@example.com", "verify_after_polls": 4, "poll_seconds": 0.3}'
    child = spawn(
        "runs", "start", "onboarding", "--params", params, "--wait",
        env={**env, "STATEWRIGHT_LOG_LEVEL": "INFO"},
    )  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    lines = screen_of(child.before)
    run_id = json.loads(cli_process("runs", "list", "--json", env=env).stdout)[0]["id"]
    assert any(line.strip() == f"onboarding run {run_id}" for line in lines), lines
    assert sum("┃ state" in line for line in lines) == 1, "a stale frame of the table is left"
    logged = [n for n, line in enumerate(lines) if "step polls again" in line]
    assert logged, lines
    table = next(n for n, line in enumerate(lines) if "┃ state" in line)
    assert max(logged) < table
    assert not any("step" in line and ("│" in line or "┃" in line) for line in lines)
    assert [line.split("│")[1].strip() for line in lines if line.count("│") == 3] == [
        "provisioning",
        "verifying",
        "welcoming",
        "active",
    ]


def test_ctrl_c_leaves_the_run_going(env: dict[str, str]) -> None:
    """Ctrl-C on `runs wait` stops following, says the run goes on and how to follow it
    again, exits 130, and the run is still running."""
    started = cli_process("runs", "start", "approval", "--json", env=env)
    run_id = json.loads(started.stdout)["id"]
    child = spawn("runs", "wait", run_id[:12], env=env)
    child.expect("awaiting")
    drawn = child.before + child.after
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    text = " ".join(" ".join(screen_of(drawn + child.before)).split())
    assert f"stopped following run {run_id}" in text
    assert f"Follow it again with: statewright runs wait {run_id}" in text
    assert child.exitstatus == 130
    shown = json.loads(cli_process("runs", "show", run_id, "--json", env=env).stdout)
    assert shown["status"] == "running"
