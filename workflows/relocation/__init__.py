"""Relocation: move organizations between installations (the flagship workflow).

Names load when first used (``statewright --help`` imports the command line only).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.workflows.relocation.config import RelocationConfig
    from statewright.workflows.relocation.details import RelocationInfo, relocation_info
    from statewright.workflows.relocation.format import Limits
    from statewright.workflows.relocation.retry import retry_relocation
    from statewright.workflows.relocation.start import start_relocation
    from statewright.workflows.relocation.workflow import Relocation

_LAZY = {
    "Limits": "statewright.workflows.relocation.format",
    "Relocation": "statewright.workflows.relocation.workflow",
    "RelocationConfig": "statewright.workflows.relocation.config",
    "RelocationInfo": "statewright.workflows.relocation.details",
    "relocation_info": "statewright.workflows.relocation.details",
    "retry_relocation": "statewright.workflows.relocation.retry",
    "start_relocation": "statewright.workflows.relocation.start",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'statewright.workflows.relocation' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "Limits",
    "Relocation",
    "RelocationConfig",
    "RelocationInfo",
    "relocation_info",
    "retry_relocation",
    "start_relocation",
]
