"""The README's worked example of testing a waiting workflow, run as written."""

from __future__ import annotations

import pytest

from statewright import Engine
from statewright.testing import WorkflowHarness
from statewright.workflows.document_review import DocumentReview


@pytest.fixture
def statewright_workflows() -> list[object]:
    return [DocumentReview]


def test_documents_received_then_approved(
    statewright_engine: Engine, statewright_harness: WorkflowHarness
) -> None:
    """Signalled documents are kept by the handler; the review's polls fold into one row."""
    run = statewright_engine.start("document_review", {"applicant": "ann"})
    statewright_harness.run(run.id, until_waiting=True)
    statewright_engine.signal(
        run.id, "documents_received", {"files": ["passport.pdf", "lease.pdf"]}
    )
    assert statewright_harness.run(run.id).state == "approved"
    statewright_harness.assert_transitions(
        run.id,
        [
            " --start--> requesting",
            "requesting --requested--> awaiting_documents",
            "awaiting_documents --documents_received--> reviewing",
            "reviewing --poll--> reviewing",
            "reviewing --approved--> approved",
        ],
    )


def test_no_answer_expires_after_a_week(
    statewright_engine: Engine, statewright_harness: WorkflowHarness
) -> None:
    """With no signal the wait takes 'expired' a week after it began."""
    run = statewright_engine.start("document_review", {})
    assert statewright_harness.run(run.id).state == "expired"
