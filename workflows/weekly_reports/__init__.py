"""Weekly organization reports on Celery beat (a task group, not a state machine).

Names load when first used (``statewright --help`` imports the command line only).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.workflows.weekly_reports.tasks import ReportsConfig, WeeklyReports


def __getattr__(name: str) -> Any:
    if name not in ("ReportsConfig", "WeeklyReports"):
        raise AttributeError(
            f"module 'statewright.workflows.weekly_reports' has no attribute {name!r}"
        )
    value = getattr(import_module("statewright.workflows.weekly_reports.tasks"), name)
    globals()[name] = value
    return value


__all__ = ["ReportsConfig", "WeeklyReports"]
