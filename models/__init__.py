"""SQLAlchemy models: the engine's tables and the domain tables of shipped workflows."""

from models.base import Base, metadata
from models.children import WorkflowChild, WorkflowMap
from models.domain import Organization, OrganizationMember, Project, ProjectTeam, Team, User
from models.engine import OutboxMessage, WorkflowRun, WorkflowTransition
from models.relocation import (
    Relocation,
    RelocationEmail,
    RelocationFile,
    RelocationValidation,
    RelocationValidationAttempt,
)
from models.reports import ReportDelivery, ReportSchedule
from models.schedules import WorkflowSchedule

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
    "WorkflowChild",
    "WorkflowMap",
    "WorkflowRun",
    "WorkflowSchedule",
    "WorkflowTransition",
    "metadata",
]
