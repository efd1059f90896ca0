"""The document review workflow: a wait for a person with a timeout, a signal handler,
folded review polls and a run deadline, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statewright import Engine, InvalidParamsError
from statewright.testing import WorkflowHarness
from statewright.workflows.document_review import DocumentReview


@pytest.fixture
def review(make_engine: object) -> WorkflowHarness:
    return WorkflowHarness(make_engine([DocumentReview]))  # type: ignore[operator]


def test_documents_received_then_approved(review: WorkflowHarness) -> None:
    """Signalled documents are kept by the handler; three hourly polls fold into one row."""
    engine: Engine = review.engine
    run = engine.start("document_review", {"applicant": "ann"})
    assert run.deadline_at == review.clock.now() + timedelta(days=30)
    waiting = review.run(run.id, until_waiting=True)
    assert (waiting.status, waiting.state) == ("running", "awaiting_documents")
    engine.signal(run.id, "documents_received", {"files": ["passport.pdf", "lease.pdf"]})
    done = review.run(run.id)
    assert (done.state, done.context["files"]) == ("approved", ["passport.pdf", "lease.pdf"])
    [polls] = [h for h in engine.history(run.id) if h.trigger == "poll"]
    assert (polls.polls, polls.at - polls.first_at) == (3, timedelta(hours=2))
    assert [h.trigger for h in engine.history(run.id)] == [
        "start",
        "requested",
        "documents_received",
        "poll",
        "approved",
    ]


def test_documents_without_files_are_refused(review: WorkflowHarness) -> None:
    """A documents_received signal with no file list is refused and the run still waits."""
    engine: Engine = review.engine
    run = engine.start("document_review", {})
    review.run(run.id, until_waiting=True)
    with pytest.raises(InvalidParamsError, match="needs 'files', a non-empty list"):
        engine.signal(run.id, "documents_received", {"files": []})
    assert engine.get(run.id).state == "awaiting_documents"


def test_no_answer_expires_after_a_week(review: WorkflowHarness) -> None:
    """With no signal the wait takes 'expired' a week after it began."""
    engine: Engine = review.engine
    run = engine.start("document_review", {})
    expired = review.run(run.id)
    assert expired.state == "expired"
    assert expired.finished_at == run.created_at + timedelta(days=7)


def test_a_review_desk_that_never_answers_times_out(review: WorkflowHarness) -> None:
    """A deadline (a day, given at start: earlier than the workflow's 30 days) takes
    'timed_out' from a review that keeps polling."""
    engine: Engine = review.engine
    run = engine.start("document_review", {"review_hours": 10_000}, deadline=timedelta(days=1))
    review.run(run.id, until_waiting=True)
    engine.signal(run.id, "documents_received", {"files": ["a.pdf"]})
    done = review.run(run.id)
    assert done.state == "timed_out"
    assert done.finished_at == run.created_at + timedelta(days=1)
    assert len(engine.history(run.id)) == 5  # 24 polls, one row
