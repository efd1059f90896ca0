"""Workflows shipped with statewright."""

from workflows.onboarding import Onboarding

WORKFLOWS = [Onboarding]

__all__ = ["WORKFLOWS", "Onboarding"]
