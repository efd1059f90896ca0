"""Workflows and task groups shipped with statewright.

Names load when first used, so importing a submodule (a command line, say) does not
import every workflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine import Workflow
    from workflows.document_review import DocumentReview
    from workflows.onboarding import Onboarding
    from workflows.relocation import Relocation
    from workflows.weekly_reports import WeeklyReports

    WORKFLOWS: list[type[Workflow]]

_LAZY = {
    "DocumentReview": "workflows.document_review",
    "Onboarding": "workflows.onboarding",
    "Relocation": "workflows.relocation",
    "WeeklyReports": "workflows.weekly_reports",
}

#: The shipped workflows, in the order they are registered.
_ORDER = ("Onboarding", "DocumentReview", "Relocation", "WeeklyReports")


def __getattr__(name: str) -> Any:
    if name == "WORKFLOWS":
        value: Any = [__getattr__(n) for n in _ORDER]
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'workflows' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["WORKFLOWS", "DocumentReview", "Onboarding", "Relocation", "WeeklyReports"]
