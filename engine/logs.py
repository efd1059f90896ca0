"""Logging configuration: structlog, readable on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from engine.redaction import redact_event

FORMATS = ("console", "json")


def configure_logging(fmt: str | None = None, *, level: str = "INFO") -> None:
    """Configure structlog once per process (``STATEWRIGHT_LOG_FORMAT`` overrides)."""
    chosen = (
        fmt
        or os.environ.get("STATEWRIGHT_LOG_FORMAT")
        or ("console" if sys.stderr.isatty() else "json")
    )
    if chosen not in FORMATS:
        from engine.errors import ConfigurationError

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
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
