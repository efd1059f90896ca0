"""Workflows and task groups shipped with statewright.

Names load when first used, so importing a submodule (a command line, say) does not
import every workflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.definition import Workflow
    from statewright.workflows.document_review import DocumentReview
    from statewright.workflows.onboarding import Onboarding
    from statewright.workflows.relocation import Relocation
    from statewright.workflows.weekly_reports import WeeklyReports

    WORKFLOWS: list[type[Workflow]]

_LAZY = {
    "DocumentReview": "statewright.workflows.document_review",
    "Onboarding": "statewright.workflows.onboarding",
    "Relocation": "statewright.workflows.relocation",
    "WeeklyReports": "statewright.workflows.weekly_reports",
}

#: The shipped workflows, in the order they are registered.
_ORDER = ("Onboarding", "DocumentReview", "Relocation", "WeeklyReports")


def __getattr__(name: str) -> Any:
    if name == "WORKFLOWS":
        value: Any = [__getattr__(n) for n in _ORDER]
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'statewright.workflows' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["WORKFLOWS", "DocumentReview", "Onboarding", "Relocation", "WeeklyReports"]
