"""A credit bureau outage is retried by the scoring step's retry policy."""

from __future__ import annotations

import pytest
from test_loans import loan
from workflows.loans import BureauUnavailableError, LoanApplication, apply_for_loan

from statewright import Engine
from statewright.testing import WorkflowHarness


class FlakyBureau:
    """Down for the first ``outages`` calls."""

    def __init__(self, outages: int) -> None:
        self.calls = 0
        self.outages = outages

    def score(self, applicant: str) -> int:
        self.calls += 1
        if self.calls <= self.outages:
            raise BureauUnavailableError("bureau timed out")
        return 720


@pytest.fixture
def statewright_workflows() -> list[LoanApplication]:
    return [LoanApplication(bureau=FlakyBureau(outages=2))]


def test_a_bureau_outage_is_retried(
    statewright_engine: Engine, statewright_harness: WorkflowHarness
) -> None:
    """Two outages are retried with backoff; the third attempt scores the loan."""
    run = apply_for_loan(statewright_engine, "L-1006", "Ada", 3_000)
    statewright_harness.run(run.id, until_waiting=True)
    triggers = [t.trigger for t in statewright_engine.history(run.id)]
    assert triggers.count("retry") == 2
    assert loan(statewright_engine, "L-1006").credit_score == 720
