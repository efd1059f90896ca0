"""Cross-cutting concerns of an instrumented task, one small hook per file.

A hook is a context manager factory taking the ``TaskCall``; hooks are entered in
order around the task body and exited in reverse, like middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from statewright.metrics import Metrics


@dataclass(slots=True)
class TaskCall:
    """One execution of an instrumented task, as the hooks see it."""

    name: str
    #: The metric instance: the task name, plus its ``stat_suffix`` when it has one.
    instance: str
    task_id: str | None
    headers: dict[str, Any]
    metrics: Metrics
    record_timing: bool = True
    tags: dict[str, str] = field(default_factory=dict)


Hook = Callable[[TaskCall], AbstractContextManager[None]]
