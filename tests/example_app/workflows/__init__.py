"""The loan service's workflows (statewright's shipped ones live in `statewright.workflows`)."""

from workflows.loans import LoanApplication

__all__ = ["LoanApplication"]
