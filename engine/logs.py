"""Logging configuration: structlog, readable on a terminal, JSON lines otherwise.

Every log line goes through one sink. While a live display (``statewright runs wait``,
``--wait``) draws on the terminal, ``logs_to(console)`` routes the lines through that
display's console, so they print above it instead of tearing its frames.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import structlog

from statewright.redaction import redact_event

FORMATS = ("console", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LineConsole(Protocol):
    """What ``logs_to`` needs of a console: rich's ``Console`` has it."""

    def out(self, *objects: Any, highlight: bool | None = None) -> None: ...


class _Sink:
    """A file-like object that writes to stderr, or through a console while one is set."""

    def __init__(self) -> None:
        self.console: LineConsole | None = None

    def write(self, text: str) -> int:
        console = self.console
        if console is None:
            return sys.stderr.write(text)
        from rich.text import Text

        for line in text.rstrip("\n").split("\n"):
            console.out(Text.from_ansi(line), highlight=False)
        return len(text)

    def flush(self) -> None:
        if self.console is None:
            sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


SINK = _Sink()


@contextmanager
def logs_to(console: LineConsole) -> Iterator[None]:
    """Route every log line (structlog and standard logging) through ``console``."""
    previous, SINK.console = SINK.console, console
    try:
        yield
    finally:
        SINK.console = previous


def log_level_from_env() -> str:
    """``STATEWRIGHT_LOG_LEVEL`` (WARNING by default for commands), checked."""
    return check_level(os.environ.get("STATEWRIGHT_LOG_LEVEL") or "WARNING")


def check_level(level: str) -> str:
    if level.upper() not in LEVELS:
        from statewright.errors import ConfigurationError

        raise ConfigurationError(
            f"STATEWRIGHT_LOG_LEVEL {level!r} is not a log level; allowed: {', '.join(LEVELS)}"
        )
    return level.upper()


def configure_logging(fmt: str | None = None, *, level: str = "INFO") -> None:
    """Configure structlog once per process (``STATEWRIGHT_LOG_FORMAT`` overrides)."""
    chosen = (
        fmt
        or os.environ.get("STATEWRIGHT_LOG_FORMAT")
        or ("console" if sys.stderr.isatty() else "json")
    )
    if chosen not in FORMATS:
        from statewright.errors import ConfigurationError

        raise ConfigurationError(
            f"STATEWRIGHT_LOG_FORMAT {chosen!r} is not known; allowed: {', '.join(FORMATS)}"
        )
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if chosen == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[check_level(level)]
        ),
        logger_factory=structlog.PrintLoggerFactory(SINK),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=SINK)
