"""Weekly organization reports: a workflow that maps over organizations (beat starts it).

Names load when first used (``statewright --help`` imports the command line only).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.workflows.weekly_reports.config import ReportsConfig
    from statewright.workflows.weekly_reports.tasks import WeeklyReports

_LAZY = {
    "ReportsConfig": "statewright.workflows.weekly_reports.config",
    "WeeklyReports": "statewright.workflows.weekly_reports.tasks",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(
            f"module 'statewright.workflows.weekly_reports' has no attribute {name!r}"
        )
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = ["ReportsConfig", "WeeklyReports"]
