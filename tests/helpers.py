"""Helpers shared by the test modules: running the CLI, reading effects, free ports."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from click.testing import CliRunner

from statewright import Engine
from tests.sample_workflows import effect_counts

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "statewright")

#: Commands that replace the process (``os.execve`` into Celery) or serve until stopped:
#: only the real executable runs them.
PROCESS_COMMANDS = frozenset({"worker", "beat", "relay", "web"})
#: Settings of the shipped workflows, read when a process first needs them (their default
#: instances keep them): set per call, they need a process per call.
READ_ONCE_PER_PROCESS = ("STATEWRIGHT_RELOCATION_", "STATEWRIGHT_REPORTS_", "STATEWRIGHT_EMAIL_")


def cli_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed ``statewright`` executable from the repository root in a process
    of its own; its result, whatever it is."""
    return subprocess.run(
        [CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``statewright`` as ``cli_process`` would, but in this process: the console
    entry point with ``env`` as the whole environment, ``args`` as its arguments and the
    repository root as the working directory; its exit code, stdout and stderr.

    It spares each call a new interpreter importing the engine (about a second). What a
    call changes process-wide (logging configuration, the environment, the working
    directory) is put back afterwards, and a call that leaves a thread running fails.
    Process isolation itself (plugins found on another ``PYTHONPATH``, commands that
    become Celery or serve until stopped, a terminal, settings a workflow reads once per
    process) is ``cli_process``'s to test: those are refused here.
    """
    if args and args[0] in PROCESS_COMMANDS:
        raise ValueError(
            f"`statewright {args[0]}` replaces or holds its process; run it with cli_process"
        )
    if env.get("PYTHONPATH", str(ROOT)) != str(ROOT):
        raise ValueError(
            f"PYTHONPATH {env['PYTHONPATH']!r} is not this process's; run it with cli_process"
        )
    if env.get("STATEWRIGHT_SENTRY_DSN"):
        raise ValueError("sentry-sdk is initialised once per process; run it with cli_process")
    read_once = sorted(name for name in env if name.startswith(READ_ONCE_PER_PROCESS))
    if read_once:
        raise ValueError(
            f"{', '.join(read_once)}: a shipped workflow reads these once per process; "
            "run it with cli_process"
        )
    changes: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    changes.update(env)
    with _restored_process_state(), contextlib.chdir(ROOT):
        with CliRunner().isolation(env=changes) as (stdout, stderr, _), _fresh_consoles():
            code = _run_main(args)
            sys.stdout.flush()  # as the interpreter does on exit
            sys.stderr.flush()
        return subprocess.CompletedProcess(
            [CLI, *args],
            code,
            stdout.getvalue().decode("utf-8", "replace"),
            stderr.getvalue().decode("utf-8", "replace"),
        )


def _run_main(args: tuple[str, ...]) -> int:
    """The console entry point's exit code, as the interpreter would make it."""
    from statewright.cli import main

    sys.argv = [CLI, *args]
    try:
        main()
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    return 0


@contextlib.contextmanager
def _restored_process_state() -> Iterator[None]:
    """Put back what a command changes for its whole process: ``sys.argv``, structlog's
    and the root logger's configuration; fail if it left a thread behind."""
    argv, root = list(sys.argv), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config() if structlog.is_configured() else None
    threads = set(threading.enumerate())
    try:
        yield
    finally:
        sys.argv = argv
        root.handlers[:] = handlers
        root.setLevel(level)
        if structlog_config is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**structlog_config)
    left = _threads_left(threads)
    assert not left, f"the command left threads running: {left}"


@contextlib.contextmanager
def _fresh_consoles() -> Iterator[None]:
    """The command line's consoles made again, as a new process makes them on import, for
    the environment and streams of this call (they fix their width from ``COLUMNS`` and
    their colours from the terminal when made); as they were afterwards."""
    from statewright.cli.common import err, out

    consoles = ((out, {}), (err, {"stderr": True}))  # as statewright.cli.common makes them
    saved = [dict(vars(console)) for console, _ in consoles]
    for console, arguments in consoles:
        console.__init__(**arguments)  # type: ignore[misc]
    try:
        yield
    finally:
        for (console, _), state in zip(consoles, saved, strict=True):
            vars(console).clear()
            vars(console).update(state)


def _threads_left(before: set[threading.Thread], patience: float = 5.0) -> list[str]:
    """Names of threads started since ``before`` still alive after ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            return [t.name for t in left]
        time.sleep(0.01)


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
