"""Workflow packages add commands through the ``statewright.cli`` entry point group; the
engine's own commands import no workflow, and a broken plugin costs only its command."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from statewright.cli.plugins import GROUP, add_plugin_commands
from tests.helpers import ROOT, cli_process


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by its full name (``from a import b`` gives a.b)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _is_workflows(module: str) -> bool:
    """The shipped workflows package, under its import name before or after install as
    statewright.workflows."""
    return any(
        module == name or module.startswith(f"{name}.")
        for name in ("workflows", "statewright.workflows")
    )


def test_no_engine_module_imports_a_workflow() -> None:
    """No module under engine/ imports the workflows package, even lazily."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(filter(_is_workflows, _imported_modules(path)))
        for path in sorted((ROOT / "engine").rglob("*.py"))
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_shipped_commands_come_from_entry_points() -> None:
    """keys, relocation, demo and reports are the shipped packages' entry points."""
    from importlib.metadata import entry_points

    found = {point.name: point.value for point in entry_points(group=GROUP)}
    assert found == {
        "keys": "statewright.workflows.relocation.cli:keys_app",
        "relocation": "statewright.workflows.relocation.cli:relocation_app",
        "demo": "statewright.workflows.relocation.cli:demo",
        "reports": "statewright.workflows.weekly_reports.cli:reports_app",
    }


def _app_with(*points: EntryPoint) -> tuple[typer.Typer, list[str]]:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """A group, as the statewright command is, whatever it holds."""

    @app.command("hello")
    def hello() -> None:
        """Say hello."""
        typer.echo("hello")

    problems = [str(p) for p in add_plugin_commands(app, points)]
    return app, problems


def test_a_plugin_adds_a_group_or_a_command() -> None:
    """A Typer target becomes a group of its entry point's name, a function a command."""
    app, problems = _app_with(
        EntryPoint("keys", "statewright.workflows.relocation.cli:keys_app", GROUP),
        EntryPoint("demo", "statewright.workflows.relocation.cli:demo", GROUP),
    )
    assert problems == []
    runner = CliRunner()
    assert "generate" in runner.invoke(app, ["keys", "--help"]).output
    assert "--orgs" in runner.invoke(app, ["demo", "--help"]).output


def test_a_plugin_that_does_not_import_fails_only_its_command() -> None:
    """An unimportable plugin's command exits 1 with one line naming the entry point;
    the other commands still run."""
    app, problems = _app_with(EntryPoint("broken", "no_such_package.cli:app", GROUP))
    says = (
        "the statewright.cli entry point broken = 'no_such_package.cli:app' did not load "
        "(ModuleNotFoundError: No module named 'no_such_package')"
    )
    assert problems == [says]
    runner = CliRunner()
    assert runner.invoke(app, ["hello"]).output == "hello\n"
    result = runner.invoke(app, ["broken", "anything", "--at", "x"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert says in " ".join(result.output.split())  # unwrapped: the width varies
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_plugin_naming_something_else_is_refused() -> None:
    """A target that is neither a Typer app nor a function is named, with what is allowed."""
    _, problems = _app_with(EntryPoint("group", "statewright.cli.plugins:GROUP", GROUP))
    assert problems == [
        "the statewright.cli entry point group = 'statewright.cli.plugins:GROUP' names a str; "
        "allowed: a typer.Typer or a command function"
    ]


def test_a_plugin_cannot_take_a_built_in_name() -> None:
    """A plugin named like an existing command is left out; the command stays."""
    app, problems = _app_with(
        EntryPoint("hello", "statewright.workflows.relocation.cli:demo", GROUP)
    )
    assert problems == [
        "the statewright.cli entry point hello = 'statewright.workflows.relocation.cli:demo' "
        "is left out: a command has that name already"
    ]
    assert CliRunner().invoke(app, ["hello"]).output == "hello\n"


@pytest.fixture
def broken_plugin_env(tmp_path: Path) -> dict[str, str]:
    """An installed distribution whose statewright.cli entry point raises on import."""
    site = tmp_path / "site"
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[statewright.cli]\nbroken = broken_plugin:app\n")
    (site / "broken_plugin.py").write_text("raise RuntimeError('this plugin is broken')\n")
    values = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)]),
        "COLUMNS": "300",
    }
    values.pop("STATEWRIGHT_BROKER_URL", None)
    return values


def test_an_installed_broken_plugin_breaks_no_other_command(
    broken_plugin_env: dict[str, str],
) -> None:
    """With a broken plugin installed, --help and `runs list` work; its own command
    answers with one line naming the entry point, and no traceback."""
    env = broken_plugin_env
    helped = cli_process("--help", env=env)
    assert helped.returncode == 0
    assert "relocation" in helped.stdout
    assert cli_process("migrate", env=env).returncode == 0
    listed = cli_process("runs", "list", "--json", env=env)
    assert (listed.returncode, listed.stdout.strip(), listed.stderr) == (0, "[]", "")
    broken = cli_process("broken", env=env)
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines() == [
        "error: the statewright.cli entry point broken = 'broken_plugin:app' did not load "
        "(RuntimeError: this plugin is broken)"
    ]


def test_help_loads_the_plugins_but_no_engine_or_workflow() -> None:
    """Building the command line (what --help does) imports the plugins' command modules,
    but not SQLAlchemy, Celery, the engine or any workflow definition."""
    script = (
        "import sys\nfrom statewright.cli.app import app\nprint(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(result.stdout.split())
    assert {
        "statewright.workflows.relocation.cli",
        "statewright.workflows.weekly_reports.cli",
    } <= loaded
    heavy = {"sqlalchemy", "celery", "statewright.api", "statewright.workflows.relocation.workflow"}
    assert loaded & heavy == set()
