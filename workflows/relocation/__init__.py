"""Relocation: move organizations between installations (the flagship workflow)."""

from workflows.relocation.config import RelocationConfig
from workflows.relocation.details import RelocationInfo, relocation_info
from workflows.relocation.format import Limits
from workflows.relocation.retry import retry_relocation
from workflows.relocation.start import start_relocation
from workflows.relocation.workflow import Relocation

__all__ = [
    "Limits",
    "Relocation",
    "RelocationConfig",
    "RelocationInfo",
    "relocation_info",
    "retry_relocation",
    "start_relocation",
]
