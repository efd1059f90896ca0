"""Workflows and task groups shipped with statewright.

Names load when first used, so importing a submodule (a command line, say) does not
import every workflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.onboarding import Onboarding
    from workflows.relocation import Relocation
    from workflows.weekly_reports import WeeklyReports

    WORKFLOWS: list[type[Onboarding] | type[Relocation] | type[WeeklyReports]]

_LAZY = {
    "Onboarding": "workflows.onboarding",
    "Relocation": "workflows.relocation",
    "WeeklyReports": "workflows.weekly_reports",
}


def __getattr__(name: str) -> Any:
    if name == "WORKFLOWS":
        value: Any = [__getattr__(n) for n in ("Onboarding", "Relocation", "WeeklyReports")]
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'workflows' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["WORKFLOWS", "Onboarding", "Relocation", "WeeklyReports"]
