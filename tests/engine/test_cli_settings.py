"""Settings on the command line: read when a command needs them, refused by name, and
misspelt variables pointed out; every command's help whatever the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from statewright import ConfigurationError, Engine, Settings
from statewright.cli.app import app
from statewright.environment import unknown_variables
from statewright.workflows.weekly_reports import WeeklyReports
from tests.helpers import ROOT, cli_process


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The embedded default on a fresh SQLite file."""
    values = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "120",
    }
    values.pop("STATEWRIGHT_BROKER_URL", None)
    return values


def test_bad_workflow_settings_break_only_the_commands_that_need_them(
    env: dict[str, str],
) -> None:
    """A bad relocation limit or report schedule leaves --help and other commands working;
    the relocation command refuses naming the variable, the value and what is allowed."""
    bad = {
        **env,
        "STATEWRIGHT_RELOCATION_MAX_ORGS": "abc",
        "STATEWRIGHT_REPORTS_CRON": "0 6 * *",
    }
    assert cli_process("--help", env=bad).returncode == 0
    assert cli_process("migrate", env=bad).returncode == 0
    listed = cli_process("runs", "list", "--json", env=bad)
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]"), listed.stderr
    export = Path(bad["STATEWRIGHT_DATABASE_URL"].removeprefix("sqlite:///")).parent / "x.swr"
    export.write_bytes(b"{}")
    started = cli_process("relocation", "start", str(export), "--owner", "kim@example.com", env=bad)
    assert started.returncode == 1
    assert "STATEWRIGHT_RELOCATION_MAX_ORGS 'abc' is not a positive whole number" in (
        started.stderr
    )
    assert "Traceback" not in started.stderr


def test_a_bad_report_schedule_is_named_where_beat_loads_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The beat schedule is read when beat's schedule is built, and a bad one is named."""
    monkeypatch.setenv("STATEWRIGHT_REPORTS_CRON", "0 6 * *")
    engine = Engine(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"), [WeeklyReports])
    try:
        with pytest.raises(ConfigurationError, match="STATEWRIGHT_REPORTS_CRON '0 6 \\* \\*'"):
            engine.beat_schedule()
        monkeypatch.setenv("STATEWRIGHT_REPORTS_CRON", "99 6 * * 1")
        with pytest.raises(ConfigurationError, match="'99 6 \\* \\* 1' is not a cron schedule"):
            engine.beat_schedule()
        monkeypatch.setenv("STATEWRIGHT_REPORTS_CRON", "0 6 * * 1")
        assert "weekly_reports.schedule_organizations" in engine.beat_schedule()
    finally:
        engine.close()


def test_a_misspelt_variable_is_pointed_out(env: dict[str, str]) -> None:
    """An unknown STATEWRIGHT_* variable is warned about with the closest known name."""
    result = cli_process("workflows", "--json", env={**env, "STATEWRIGHT_BORKER_URL": "redis://x"})
    assert result.returncode == 0
    assert (
        "STATEWRIGHT_BORKER_URL is not a statewright setting and is ignored; did you mean "
        "STATEWRIGHT_BROKER_URL?" in result.stderr
    )
    assert unknown_variables({"STATEWRIGHT_ZZZ": "1", "STATEWRIGHT_BROKER_URL": "x"}) == [
        ("STATEWRIGHT_ZZZ", None)
    ]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("STATEWRIGHT_LOG_LEVEL", "LOUD", "STATEWRIGHT_LOG_LEVEL 'LOUD' is not a log level"),
        ("STATEWRIGHT_METRICS_PORT", "99999", "STATEWRIGHT_METRICS_PORT '99999' is not a TCP"),
        ("STATEWRIGHT_SILO_MODE", "edge", "STATEWRIGHT_SILO_MODE: unknown silo mode 'edge'"),
    ],
)
def test_bad_engine_settings_are_named(
    env: dict[str, str], variable: str, value: str, says: str
) -> None:
    """A bad engine setting fails a command with its name and value, and no traceback."""
    result = cli_process("runs", "list", env={**env, variable: value})
    assert result.returncode == 1
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path below ``group`` (typer carries its own click, so duck-typed)."""
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            found += _commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def test_every_command_has_help_with_an_example() -> None:
    """Each command's --help works with a broken environment and shows an example."""
    runner = CliRunner()
    broken = {"STATEWRIGHT_DATABASE_URL": "mysql://x", "STATEWRIGHT_REPORTS_CRON": "bad"}
    commands = _commands(typer.main.get_command(app))
    assert ("runs", "wait") in commands
    assert ("doctor",) in commands
    for command in commands:
        result = runner.invoke(app, [*command, "--help"], env={**broken, "COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output)
        assert "Example" in result.output, command


def test_choices_are_listed_in_help() -> None:
    """--status and --format list their choices."""
    runner = CliRunner()
    status = runner.invoke(app, ["runs", "list", "--help"], env={"COLUMNS": "200"})
    assert "running|paused|succeeded|failed|cancelled" in status.output
    fmt = runner.invoke(app, ["diagram", "--help"], env={"COLUMNS": "200"})
    assert "mermaid|dot|svg|png" in fmt.output


def test_readme_command_table_matches_the_commands() -> None:
    """Every command is in README's command table, and the table lists no other."""
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- commands -->")[1].split("<!-- /commands -->")[0]
    listed = {
        tuple(row.split("`")[1].removeprefix("statewright ").split())
        for row in table.splitlines()
        if row.startswith("| `statewright")
    }
    assert listed == set(_commands(typer.main.get_command(app)))


def test_option_choices_match_the_engine() -> None:
    """The CLI's --status and --format choices are the engine's statuses and formats."""
    from statewright.cli.common import Status
    from statewright.cli.inspect import DiagramFormat
    from statewright.diagrams import FORMATS
    from statewright.models.engine import RUN_STATUSES

    assert [s.value for s in Status] == list(RUN_STATUSES)
    assert [f.value for f in DiagramFormat] == list(FORMATS)


class _Recording(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def test_every_engine_setting_is_a_known_variable() -> None:
    """Each variable Settings.from_env reads (retention, console credentials among them)
    is known to the unknown-variable warning."""
    from statewright.environment import known_variables

    environ = _Recording()
    Settings.from_env(environ)
    assert {"STATEWRIGHT_RETENTION", "STATEWRIGHT_CONSOLE_TOKEN"} <= environ.asked
    assert environ.asked <= known_variables()
    assert unknown_variables({"STATEWRIGHT_CONSOLE_USER": "ops:pa55"}) == []
