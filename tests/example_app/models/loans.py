"""One row per loan application: what the workflow works on, and where it ended."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The service's own declarative base, apart from statewright's."""


class LoanRecord(Base):
    """A loan application, owned by one workflow run."""

    __tablename__ = "loan_applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_number: Mapped[str] = mapped_column(String(40), unique=True)
    run_id: Mapped[str] = mapped_column(String(32), unique=True)
    applicant: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(Integer)
    #: submitted, awaiting_documents, then approved, declined, withdrawn or failed.
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    credit_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
