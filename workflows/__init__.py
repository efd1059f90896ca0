"""Workflows shipped with statewright."""

from workflows.onboarding import Onboarding
from workflows.relocation import Relocation

WORKFLOWS = [Onboarding, Relocation]

__all__ = ["WORKFLOWS", "Onboarding", "Relocation"]
