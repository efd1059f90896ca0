"""Children and Maps through the real command line: `runs show` lists a run's parent,
children and Maps; `runs failed-items` lists a Map's failed items with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.helpers import cli, cli_env
from tests.sample_workflows import test_metadata


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The embedded default on a fresh SQLite file, migrated, with the child workflows."""
    values = cli_env(
        f"sqlite:///{tmp_path / 'cli.db'}", "tests.sample_workflows,tests.child_workflows"
    )
    assert cli("migrate", env=values).returncode == 0
    tables = create_engine(values["STATEWRIGHT_DATABASE_URL"])
    test_metadata.create_all(tables)  # the table the test workflows count effects in
    tables.dispose()
    return values


def finished(workflow: str, params: str, env: dict[str, str]) -> dict[str, object]:
    result = cli("runs", "start", workflow, "--params", params, "--wait", "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    run: dict[str, object] = json.loads(result.stdout)
    return run


def test_runs_show_lists_children_and_the_parent(env: dict[str, str]) -> None:
    """A parent's `runs show` lists its children with their status and reason; a child's
    names its parent; `--json` carries both."""
    run = finished("parent", '{"children": 2, "fail": 1}', env)
    assert run["status"] == "succeeded"
    shown = cli("runs", "show", str(run["id"]), env=env)
    assert shown.returncode == 0, shown.stderr
    assert "children" in shown.stdout
    assert "child 1 cannot work" in shown.stdout
    data = json.loads(cli("runs", "show", str(run["id"]), "--json", env=env).stdout)
    assert [(c["key"], c["status"]) for c in data["children"]] == [
        ("c0", "succeeded"),
        ("c1", "failed"),
    ]
    child = data["children"][0]["run_id"]
    assert f"parent {run['id']} (state spawning, c0)" in cli("runs", "show", child, env=env).stdout


def test_failed_items_are_listed_with_their_reasons(env: dict[str, str]) -> None:
    """A Map's failed items, by position, with the error that failed each; in pages."""
    run = finished("map_tasks", '{"items": 30, "fail_every": 10}', env)
    assert run["state"] == "done"
    data = json.loads(cli("runs", "show", str(run["id"]), "--json", env=env).stdout)
    assert [(m["started"], m["done"], m["failed"]) for m in data["maps"]] == [(30, 30, 3)]
    listed = cli("runs", "failed-items", str(run["id"]), "--json", env=env)
    assert [(i["position"], i["reason"]) for i in json.loads(listed.stdout)] == [
        (n, f"ValueError: item {n} is not allowed") for n in (0, 10, 20)
    ]
    page = cli("runs", "failed-items", str(run["id"]), "--after", "10", env=env)
    assert "item 20 is not allowed" in page.stdout
    assert "item 0 is not allowed" not in page.stdout


def test_failed_items_of_a_run_failed_in_its_map_say_a_redrive_runs_them(
    env: dict[str, str],
) -> None:
    """When the run failed in the Map, `runs failed-items` says a redrive runs its failed
    items again; `runs show` gives each Map's item time limit ("default" when unset)."""
    run = finished("fixable_map", '{"items": 3, "broken": [1]}', env)
    assert run["status"] == "failed"
    listed = cli("runs", "failed-items", str(run["id"]), env=env)
    assert listed.returncode == 0, listed.stderr
    text = " ".join(listed.stdout.split())  # rich wraps lines at the terminal's width
    assert f"statewright runs redrive {run['id']} runs its failed items again" in text
    shown = cli("runs", "show", str(run["id"]), env=env)
    assert "item limit" in shown.stdout
    assert "default" in shown.stdout
    data = json.loads(cli("runs", "show", str(run["id"]), "--json", env=env).stdout)
    assert [m["item_time_limit"] for m in data["maps"]] == [None]
