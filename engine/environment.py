"""The ``STATEWRIGHT_*`` variables statewright knows, and a warning for the ones it does not.

A misspelt variable (``STATEWRIGHT_BORKER_URL``) would otherwise be ignored in silence
and its default used instead; the command line warns about it, naming the closest
known variable. Packages that read variables of their own declare them here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Protocol

PREFIX = "STATEWRIGHT_"

_KNOWN: set[str] = {
    # the engine (statewright.config, statewright.logs, the console)
    "STATEWRIGHT_DATABASE_URL",
    "STATEWRIGHT_BROKER_URL",
    "STATEWRIGHT_SILO_MODE",
    "STATEWRIGHT_WORKFLOWS",
    "STATEWRIGHT_STATSD_ADDR",
    "STATEWRIGHT_SENTRY_DSN",
    "STATEWRIGHT_LEASE_GRACE",
    "STATEWRIGHT_DEFAULT_TIME_LIMIT",
    "STATEWRIGHT_DISPATCH_TIMEOUT",
    "STATEWRIGHT_RELAY_INTERVAL",
    "STATEWRIGHT_CONTINUE_FOR",
    "STATEWRIGHT_CONTINUE_WHEN_BUSY",
    "STATEWRIGHT_DB_PING_AFTER",
    "STATEWRIGHT_DEFAULT_QUEUE",
    "STATEWRIGHT_METRICS_PORT",
    "STATEWRIGHT_BEAT_RELAY",
    "STATEWRIGHT_RETENTION",
    "STATEWRIGHT_CONSOLE_TOKEN",
    "STATEWRIGHT_CONSOLE_USER",
    "STATEWRIGHT_LOG_FORMAT",
    "STATEWRIGHT_LOG_LEVEL",
    "STATEWRIGHT_REQUIRE_SERVICES",
    # shipped workflows (relocation.config, weekly_reports.tasks)
    "STATEWRIGHT_EMAIL_BACKEND",
    "STATEWRIGHT_EMAIL_FROM",
    "STATEWRIGHT_RELOCATION_PRIVATE_KEY",
    "STATEWRIGHT_RELOCATION_MAX_FILE_BYTES",
    "STATEWRIGHT_RELOCATION_MAX_DECOMPRESSED_BYTES",
    "STATEWRIGHT_RELOCATION_MAX_ORGS",
    "STATEWRIGHT_RELOCATION_MAX_USERS",
    "STATEWRIGHT_RELOCATION_VALIDATION_INTERVAL",
    "STATEWRIGHT_RELOCATION_VALIDATION_TIMEOUT",
    "STATEWRIGHT_RELOCATION_VALIDATION_RUNS",
    "STATEWRIGHT_REPORTS_CRON",
    "STATEWRIGHT_REPORTS_BATCH",
}


class Printer(Protocol):
    def print(self, *objects: object, highlight: bool | None = None) -> None: ...


def declare_variables(names: Iterable[str]) -> None:
    """Make ``names`` known (a package of workflows that reads settings of its own)."""
    for name in names:
        if not name.startswith(PREFIX):
            raise ValueError(f"{name!r} does not start with {PREFIX}")
        _KNOWN.add(name)


def known_variables() -> frozenset[str]:
    return frozenset(_KNOWN)


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each ``STATEWRIGHT_*`` variable nothing reads, with the closest known name (if any)."""
    # compared without the shared prefix, which would make every name look close
    known = sorted(name.removeprefix(PREFIX) for name in _KNOWN)
    found = []
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in _KNOWN:
            close = difflib.get_close_matches(name.removeprefix(PREFIX), known, n=1, cutoff=0.6)
            found.append((name, PREFIX + close[0] if close else None))
    return found


def warn_unknown_variables(environ: Mapping[str, str], console: Printer) -> None:
    for name, close in unknown_variables(environ):
        hint = f"; did you mean {close}?" if close else ""
        console.print(
            f"[yellow]warning:[/yellow] {name} is not a statewright setting and is ignored{hint}",
            highlight=False,
        )
