"""Workflows and task groups shipped with statewright."""

from workflows.onboarding import Onboarding
from workflows.relocation import Relocation
from workflows.weekly_reports import WeeklyReports

WORKFLOWS = [Onboarding, Relocation, WeeklyReports]

__all__ = ["WORKFLOWS", "Onboarding", "Relocation", "WeeklyReports"]
