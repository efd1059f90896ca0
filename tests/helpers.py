"""Helpers shared by the test modules: running the CLI, reading effects, free ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from statewright import Engine
from tests.sample_workflows import effect_counts

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "statewright")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the ``statewright`` command from the repository root; its result, whatever it is."""
    return subprocess.run(
        [CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def cli_env(
    database_url: str, workflows: str = "workflows,tests.sample_workflows"
) -> dict[str, str]:
    """The environment of a CLI run: the embedded default (no broker) on ``database_url``,
    with ``workflows`` registered and a wide terminal."""
    values = {
        **os.environ,
        "STATEWRIGHT_DATABASE_URL": database_url,
        "STATEWRIGHT_WORKFLOWS": workflows,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    values.pop("STATEWRIGHT_BROKER_URL", None)
    return values


def cli_json(*args: str, env: dict[str, str]) -> Any:
    """The JSON a CLI command prints with ``--json``; it must succeed."""
    result = cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cli_refused(*args: str, env: dict[str, str], says: str, code: int = 1) -> None:
    """A CLI command exits with ``code`` and its error says ``says`` (line wrapping aside)."""
    result = cli(*args, env=env)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert says in " ".join(result.stderr.split()), result.stderr


def effects_of(engine: Engine, run_id: str) -> dict[str, int]:
    """How often each state's database effect was applied for ``run_id``."""
    with engine.db.sessions() as session:
        return effect_counts(session, run_id)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
