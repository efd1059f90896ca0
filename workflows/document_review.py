"""Document review: wait for a person, with a timeout, inside a run with a deadline.

An applicant is asked for documents; the run then *waits* (no step runs, nothing is
written) until the applicant sends them (the ``documents_received`` signal, whose
handler checks and keeps the list of files) or withdraws, and takes ``expired`` if a
week passes first. Received documents are reviewed by polling an outside review desk
(the polls fold into one history row). The whole run has 30 days: past that it takes
``timed_out`` from wherever it waits or polls.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from statewright.context import StepContext
from statewright.definition import Workflow, step
from statewright.errors import InvalidParamsError
from statewright.outcomes import Poll
from statewright.timers import SignalContext
from statewright.waits import Wait, on_signal


class DocumentReview(Workflow):
    """Ask for documents, wait up to a week for them, review them, within 30 days."""

    name = "document_review"
    transitions = [
        ("requested", "requesting", "awaiting_documents"),
        ("documents_received", "awaiting_documents", "reviewing"),
        ("withdrawn", "awaiting_documents", "withdrawn"),
        ("expired", "awaiting_documents", "expired"),
        ("approved", "reviewing", "approved"),
        ("rejected", "reviewing", "rejected"),
        ("timed_out", "awaiting_documents", "timed_out"),
        ("timed_out", "reviewing", "timed_out"),
    ]
    terminal = ["approved", "rejected", "withdrawn", "expired", "timed_out"]
    waits = {
        "awaiting_documents": Wait(
            signals=("documents_received", "withdrawn"),
            timeout=timedelta(days=7),
            on_timeout="expired",
        )
    }
    deadline = timedelta(days=30)
    on_deadline = "timed_out"
    deadline_reason = "The review was not finished within 30 days"

    @step(initial=True, reason="We could not ask for the documents")
    def requesting(self, ctx: StepContext) -> Literal["requested"]:
        ctx.context["requested_from"] = str(ctx.params.get("applicant", "applicant"))
        return "requested"

    @on_signal("awaiting_documents")
    def documents(self, ctx: SignalContext) -> None:
        if ctx.trigger == "withdrawn":
            ctx.context["withdrawn_because"] = str(ctx.data.get("reason", ""))
            return
        files = ctx.data.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise InvalidParamsError(
                f"documents_received needs 'files', a non-empty list of names; got {files!r}"
            )
        ctx.context["files"] = files

    @step(reason="The review desk did not answer")
    def reviewing(self, ctx: StepContext) -> Literal["approved", "rejected"] | Poll:
        if ctx.polls < int(ctx.params.get("review_hours", 3)):
            return Poll(after=timedelta(hours=1))  # the desk answers on the hour
        return "approved" if len(ctx.context.get("files", [])) >= 2 else "rejected"
