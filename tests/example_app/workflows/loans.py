"""A loan application: scored by a credit bureau (retried when it is down), waits for
the applicant's documents (a signal), then underwritten. Its record says how it ended."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import LoanRecord
from statewright import (
    Engine,
    Migrations,
    RetryPolicy,
    RunEnd,
    RunInfo,
    StepContext,
    Wait,
    Workflow,
    on_end,
    step,
)


class BureauUnavailableError(Exception):
    """The credit bureau did not answer; worth another try."""


class CreditBureau(Protocol):
    def score(self, applicant: str) -> int: ...


class LocalBureau:
    """Scores by name length: a stand-in for a real bureau's client."""

    def score(self, applicant: str) -> int:
        return 500 + 20 * len(applicant)


class LoanApplication(Workflow):
    """scoring -> awaiting_documents -> underwriting -> approved | declined."""

    name = "loan_application"
    transitions = [
        ("scored", "scoring", "awaiting_documents"),
        ("documents_received", "awaiting_documents", "underwriting"),
        ("documents_overdue", "awaiting_documents", "declined"),
        ("approve", "underwriting", "approved"),
        ("decline", "underwriting", "declined"),
    ]
    terminal = ["approved", "declined"]
    waits = {
        "awaiting_documents": Wait(
            signals=["documents_received"],
            timeout=timedelta(days=30),
            on_timeout="documents_overdue",
        )
    }
    #: Find a run by its loan number: engine.list(key="L-1001"), `statewright runs list --key`.
    business_key = "loan_number"
    #: The loan_applications table: branch `loans` in this service's `migrations` package.
    migrations = Migrations("loans", versions="migrations")

    def __init__(self, bureau: CreditBureau | None = None) -> None:
        self._bureau = bureau or LocalBureau()

    @step(
        "scoring",
        initial=True,
        retry=RetryPolicy(max_attempts=4, backoff=30.0, retry_on=(BureauUnavailableError,)),
    )
    def scoring(self, ctx: StepContext) -> str:
        loan = _loan(ctx.session, ctx.run_id)
        loan.credit_score = self._bureau.score(loan.applicant)
        loan.status = "awaiting_documents"
        return "scored"

    @step("underwriting")
    def underwriting(self, ctx: StepContext) -> str:
        loan = _loan(ctx.session, ctx.run_id)
        documents = ctx.context.get("documents") or []
        enough = loan.credit_score is not None and loan.credit_score >= 600
        return "approve" if enough and "payslip" in documents else "decline"

    @on_end("succeeded")
    def decided(self, end: RunEnd) -> None:
        _loan(end.session, end.run_id).status = end.state  # approved or declined

    @on_end("cancelled", "aborted")
    def withdrawn(self, end: RunEnd) -> None:
        _loan(end.session, end.run_id).status = "withdrawn"

    @on_end("failed")
    def failed(self, end: RunEnd) -> None:
        _loan(end.session, end.run_id).status = "failed"


def _loan(session: Session, run_id: str) -> LoanRecord:
    return session.execute(select(LoanRecord).where(LoanRecord.run_id == run_id)).scalar_one()


def apply_for_loan(engine: Engine, loan_number: str, applicant: str, amount: int) -> RunInfo:
    """Start a run and write its loan record in the same transaction."""

    def record(session: Session, run_id: str) -> None:
        session.add(
            LoanRecord(
                loan_number=loan_number,
                run_id=run_id,
                applicant=applicant,
                amount=amount,
                status="submitted",
            )
        )

    params: dict[str, Any] = {"loan_number": loan_number, "amount": amount}
    return engine.start("loan_application", params, idempotency_key=loan_number, setup=record)
