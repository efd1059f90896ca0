"""What a benchmarked process sends to the database, and when each step's handler ran.

Imported by every process under measurement (workers, relay, DBOS executors) when
``STATEWRIGHT_BENCH_PROBE`` names a directory. It counts, per process:

- ``statements``: every statement SQLAlchemy hands the driver, including the
  ``BEGIN``, ``COMMIT`` and ``ROLLBACK`` the driver sends for a transaction and
  the ``SELECT 1`` of a pool pre-ping; each is one network round trip;
- ``transactions``: commits.

A thread writes the counters to ``<dir>/counts-<pid>.json`` every 0.2 s, so the
driver can take them before and after the measured window. ``mark`` appends one
line per handler (key, step, start, end in epoch seconds) to ``<dir>/steps-<pid>.log``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

ENV = "STATEWRIGHT_BENCH_PROBE"

_counts = {"statements": 0, "transactions": 0, "rollbacks": 0}
#: Round trips by kind (``UPDATE workflow_runs``, ``COMMIT``, ``ping`` ...), for the breakdown.
_kinds: dict[str, int] = {}
_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "marks": None}


def _directory() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def _bump(name: str, by: int = 1, kind: str | None = None) -> None:
    with _lock:
        _counts[name] += by
        if kind is not None:
            _kinds[kind] = _kinds.get(kind, 0) + by
    _ensure_dumper()


def _ensure_dumper() -> None:
    """One dumper thread per process (a forked pool process starts its own)."""
    pid = os.getpid()
    if _state["pid"] == pid:
        return
    _state["pid"] = pid
    _state["marks"] = None
    thread = threading.Thread(target=_dump_forever, name="bench-probe", daemon=True)
    thread.start()


def _dump_forever() -> None:
    while True:
        dump()
        time.sleep(0.2)


def dump() -> None:
    """Write this process's counters now."""
    directory = _directory()
    if directory is None:
        return
    with _lock:
        data: dict[str, Any] = dict(_counts)
        data["kinds"] = dict(_kinds)
    target = directory / f"counts-{os.getpid()}.json"
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(data))
    partial.replace(target)


def mark(key: str, step: int, started: float, ended: float) -> None:
    """Record that ``key``'s handler for ``step`` ran from ``started`` to ``ended``."""
    directory = _directory()
    if directory is None:
        return
    _ensure_dumper()
    handle = _state["marks"]
    if handle is None:
        handle = (directory / f"steps-{os.getpid()}.log").open("a", buffering=1)
        _state["marks"] = handle
    handle.write(f"{key} {step} {started:.6f} {ended:.6f}\n")


def install() -> None:
    """Count every round trip of every SQLAlchemy engine in this process."""
    if _directory() is None or getattr(install, "done", False):
        return
    install.done = True  # type: ignore[attr-defined]

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        _bump("statements", kind=_kind(statement))

    @event.listens_for(Engine, "begin")
    def _begin(connection: Any) -> None:
        # the driver sends BEGIN with the first statement of a transaction (nothing in
        # autocommit); SQLite's BEGIN IMMEDIATE is a statement counted above already
        if connection.dialect.name == "postgresql" and not _autocommit(connection):
            _bump("statements", kind="BEGIN")

    @event.listens_for(Engine, "commit")
    def _commit(connection: Any) -> None:
        if not _autocommit(connection):
            _bump("statements", kind="COMMIT")
            _bump("transactions")

    @event.listens_for(Engine, "rollback")
    def _rollback(connection: Any) -> None:
        if not _autocommit(connection):
            _bump("statements", kind="ROLLBACK")
            _bump("rollbacks")

    from sqlalchemy.engine.default import DefaultDialect

    original = DefaultDialect._do_ping_w_event  # every dialect's pre-ping goes through it

    def counted_ping(self: DefaultDialect, dbapi_connection: Any) -> bool:
        _bump("statements", kind="pre-ping SELECT 1")
        return bool(original(self, dbapi_connection))

    DefaultDialect._do_ping_w_event = counted_ping  # type: ignore[method-assign]

    from statewright import pool_ping

    engine_ping = pool_ping.ping  # the engine's own ping of a connection that rested

    def counted_engine_ping(engine: Any, dbapi_connection: Any) -> bool:
        _bump("statements", kind="pre-ping SELECT 1")
        return engine_ping(engine, dbapi_connection)

    pool_ping.ping = counted_engine_ping


def _autocommit(connection: Any) -> bool:
    """Whether the driver connection is in autocommit (no BEGIN, COMMIT or ROLLBACK is sent)."""
    try:
        return bool(connection.connection.dbapi_connection.autocommit)
    except AttributeError:  # SQLite's driver: its transactions are explicit statements
        return False


def _kind(statement: str) -> str:
    """``WITH moved AS (UPDATE workflow_runs ...`` → ``WITH moved``; ``UPDATE bench_rows ...``
    → ``UPDATE bench_rows``: enough to tell the engine's statements apart."""
    words = statement.split()
    if not words:
        return "?"
    verb = words[0].upper()
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return f"{verb} {words[2]}"
    if len(words) > 1:
        return f"{verb} {words[1]}"
    return verb


def read_counts(directory: Path) -> dict[str, Any]:
    """The sum of every process's latest counters in ``directory``."""
    total: dict[str, Any] = {"statements": 0, "transactions": 0, "rollbacks": 0, "kinds": {}}
    for path in directory.glob("counts-*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for name in ("statements", "transactions", "rollbacks"):
            total[name] += int(data.get(name, 0))
        for kind, count in data.get("kinds", {}).items():
            total["kinds"][kind] = total["kinds"].get(kind, 0) + int(count)
    return total


def read_marks(directory: Path) -> list[tuple[str, int, float, float]]:
    """Every handler mark written in ``directory``."""
    marks: list[tuple[str, int, float, float]] = []
    for path in directory.glob("steps-*.log"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:
                marks.append((parts[0], int(parts[1]), float(parts[2]), float(parts[3])))
    return marks


install()
