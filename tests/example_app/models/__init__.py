"""The loan service's own tables (statewright's live in `statewright.models`)."""

from models.loans import Base, LoanRecord

__all__ = ["Base", "LoanRecord"]
