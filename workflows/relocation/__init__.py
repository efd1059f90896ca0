"""Relocation: move organizations between installations (the flagship workflow).

Names load when first used (``statewright --help`` imports the command line only).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.relocation.config import RelocationConfig
    from workflows.relocation.details import RelocationInfo, relocation_info
    from workflows.relocation.format import Limits
    from workflows.relocation.retry import retry_relocation
    from workflows.relocation.start import start_relocation
    from workflows.relocation.workflow import Relocation

_LAZY = {
    "Limits": "workflows.relocation.format",
    "Relocation": "workflows.relocation.workflow",
    "RelocationConfig": "workflows.relocation.config",
    "RelocationInfo": "workflows.relocation.details",
    "relocation_info": "workflows.relocation.details",
    "retry_relocation": "workflows.relocation.retry",
    "start_relocation": "workflows.relocation.start",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'workflows.relocation' has no attribute {name!r}")
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
