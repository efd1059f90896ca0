"""SQLAlchemy models: the engine's tables and the domain tables of shipped workflows."""

from statewright.models.base import Base, metadata
from statewright.models.domain import (
    Organization,
    OrganizationMember,
    Project,
    ProjectTeam,
    Team,
    User,
)
from statewright.models.engine import OutboxMessage, WorkflowRun, WorkflowTransition
from statewright.models.relocation import (
    Relocation,
    RelocationEmail,
    RelocationFile,
    RelocationValidation,
    RelocationValidationAttempt,
)
from statewright.models.reports import ReportDelivery, ReportSchedule
from statewright.models.schedules import WorkflowSchedule

__all__ = [
    "Base",
    "Organization",
    "OrganizationMember",
    "OutboxMessage",
    "Project",
    "ProjectTeam",
    "Relocation",
    "RelocationEmail",
    "RelocationFile",
    "RelocationValidation",
    "RelocationValidationAttempt",
    "ReportDelivery",
    "ReportSchedule",
    "Team",
    "User",
    "WorkflowRun",
    "WorkflowSchedule",
    "WorkflowTransition",
    "metadata",
]
