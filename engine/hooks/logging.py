"""Bind structlog context for the lifetime of a task (and of a workflow step in it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from statewright.hooks import TaskCall


@contextmanager
def logging_context(call: TaskCall) -> Iterator[None]:
    """Every log line inside the task carries the task's name and id."""
    saved = structlog.contextvars.get_contextvars()
    structlog.contextvars.bind_contextvars(task=call.name, task_id=call.task_id)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**saved)


def bind_log_fields(**fields: Any) -> None:
    """Add fields to every log line until the task ends."""
    structlog.contextvars.bind_contextvars(**fields)
