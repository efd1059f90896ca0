"""SQLAlchemy models: the engine's tables and the domain tables of shipped workflows."""

from models.base import Base, metadata
from models.engine import OutboxMessage, WorkflowRun, WorkflowTransition

__all__ = ["Base", "OutboxMessage", "WorkflowRun", "WorkflowTransition", "metadata"]
