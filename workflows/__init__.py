"""Workflows and task groups shipped with statewright."""

from workflows.document_review import DocumentReview
from workflows.onboarding import Onboarding
from workflows.relocation import Relocation
from workflows.weekly_reports import WeeklyReports

WORKFLOWS = [Onboarding, DocumentReview, Relocation, WeeklyReports]

__all__ = ["WORKFLOWS", "DocumentReview", "Onboarding", "Relocation", "WeeklyReports"]
