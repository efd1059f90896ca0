"""Relocation commands fail early and leave nothing behind: keys are checked before a run
starts, and an export from a database that is not an installation writes no file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from statewright.workflows.relocation.crypto import MAGIC, generate_keypair
from tests.helpers import ROOT, cli_process


@pytest.fixture
def env(tmp_path: Path, sqlite_template: Path) -> dict[str, str]:
    """A migrated embedded installation on a fresh SQLite file (a copy of the session's
    migrated one: `statewright migrate` itself is tested in tests/engine/test_cli.py)."""
    shutil.copy(sqlite_template, tmp_path / "target.db")
    values = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'target.db'}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    values.pop("STATEWRIGHT_BROKER_URL", None)
    return values


def one_line(text: str) -> str:
    """``text`` with its runs of whitespace as single spaces: the CLI wraps a message at
    the terminal's width, and a long temporary path (``pytest -n``'s are longer) wraps."""
    return " ".join(text.split())


def no_runs(env: dict[str, str]) -> bool:
    return json.loads(cli_process("runs", "list", "--json", env=env).stdout) == []


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("missing.pem", "cannot be read: No such file or directory"),
        ("public.pem", "is a public key; it must name this installation's private key"),
    ],
)
def test_start_refuses_a_bad_private_key(
    env: dict[str, str], tmp_path: Path, key: str, says: str
) -> None:
    """A missing key file, or a public key where the private key belongs, is refused
    before the run starts (no run, no email)."""
    generate_keypair(tmp_path)
    export = tmp_path / "acme.swr"
    export.write_bytes(MAGIC + b"sealed")
    result = cli_process(
        "relocation",
        "start",
        str(export),
        "--owner",
        "kim@example.com",
        env={**env, "STATEWRIGHT_RELOCATION_PRIVATE_KEY": str(tmp_path / key)},
    )
    assert result.returncode == 1
    assert f"STATEWRIGHT_RELOCATION_PRIVATE_KEY '{tmp_path / key}' {says}" in one_line(
        result.stderr
    )
    assert no_runs(env)


def test_start_refuses_an_encrypted_export_without_a_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    """An encrypted export and no private key configured is refused before starting."""
    export = tmp_path / "acme.swr"
    export.write_bytes(MAGIC + b"sealed")
    result = cli_process("relocation", "start", str(export), "--owner", "kim@example.com", env=env)
    assert result.returncode == 1
    assert "the export is encrypted, and this installation has no private key" in result.stderr
    assert no_runs(env)


def test_export_from_a_missing_database_leaves_nothing(env: dict[str, str], tmp_path: Path) -> None:
    """--from a SQLite file that does not exist is refused; no database, export or
    .partial file is created."""
    source = tmp_path / "nowhere.db"
    output = tmp_path / "x.swr"
    result = cli_process(
        "relocation", "export", "--org", "acme", "--from", f"sqlite:///{source}", "-o",
        str(output), env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"no such file '{source}'" in one_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.db"]


def test_export_from_a_database_without_the_tables_leaves_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    """--from a database that is not an installation's is refused, naming what it lacks."""
    source = tmp_path / "empty.db"
    source.touch()
    output = tmp_path / "x.swr"
    result = cli_process(
        "relocation", "export", "--org", "acme", "--from", f"sqlite:///{source}", "-o",
        str(output), env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "has no table organizations, users" in result.stderr
    assert "not a statewright installation's database" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "target.db"]
