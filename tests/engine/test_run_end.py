"""Lifecycle hooks: a workflow's `@on_end` writes commit with the run's ending, or not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from statewright import (
    DefinitionError,
    Engine,
    LifecycleHookError,
    PermanentError,
    RunEnd,
    StepContext,
    Wait,
    Workflow,
    on_end,
    step,
)
from statewright.models import Organization
from statewright.testing import WorkflowHarness
from tests.conftest import EngineFactory

#: Which hook should raise (set by a test; the workflow reads it).
RAISE_ON: set[str] = set()


class Application(Workflow):
    """Checked, then waits for a decision; each ending writes an owning row."""

    name = "hooked_application"
    transitions = [
        ("checked", "checking", "deciding"),
        ("rejected_early", "checking", "rejected"),
        ("approve", "deciding", "approved"),
    ]
    terminal = ["approved", "rejected"]
    waits = {"deciding": Wait(signals=["approve"])}
    business_key = "number"

    @step("checking", initial=True)
    def checking(self, ctx: StepContext) -> str:
        if ctx.params.get("broken"):
            raise PermanentError("the application is broken")
        return "rejected_early" if ctx.params.get("reject") else "checked"

    @on_end("succeeded", "failed", "cancelled", "aborted")
    def record(self, end: RunEnd) -> None:
        end.session.add(
            Organization(
                slug=f"{end.business_key}-{end.status}",
                name=f"{end.state}|{end.reason or ''}",
                created_at=datetime.now(UTC),
            )
        )
        end.session.flush()
        if end.status in RAISE_ON:
            raise RuntimeError(f"hook refuses {end.status} at postgresql://app:hunter2@db/loans")


@pytest.fixture(autouse=True)
def no_raising() -> None:
    RAISE_ON.clear()


@pytest.fixture
def hooked(make_engine: EngineFactory) -> Engine:
    return make_engine([Application])


def owning_rows(engine: Engine, number: str) -> dict[str, str]:
    with engine.db.transaction() as session:
        rows = session.scalars(select(Organization).where(Organization.slug.like(f"{number}-%")))
        return {row.slug.removeprefix(f"{number}-"): row.name for row in rows}


def test_a_run_reaching_a_terminal_state_by_a_step_calls_succeeded(hooked: Engine) -> None:
    """The fast completion path (a step's move to a terminal state) calls the hook."""
    run = hooked.start("hooked_application", {"number": "a1", "reject": True})
    assert WorkflowHarness(hooked).run(run.id).status == "succeeded"
    assert owning_rows(hooked, "a1") == {"succeeded": "rejected|"}


def test_a_signal_into_a_terminal_state_calls_succeeded(hooked: Engine) -> None:
    """A signal that ends the run calls the hook in the signal's transaction."""
    run = hooked.start("hooked_application", {"number": "a2"})
    WorkflowHarness(hooked).run(run.id, until_waiting=True)
    assert hooked.signal(run.id, "approve").status == "succeeded"
    assert owning_rows(hooked, "a2") == {"succeeded": "approved|"}


def test_a_failed_run_calls_failed_with_its_reason(hooked: Engine) -> None:
    """A step's permanent error fails the run and the hook sees the reason."""
    run = hooked.start("hooked_application", {"number": "a3", "broken": True})
    assert WorkflowHarness(hooked).run(run.id).status == "failed"
    assert owning_rows(hooked, "a3") == {"failed": "checking|the application is broken"}


def test_cancel_and_abort_call_their_hooks(hooked: Engine) -> None:
    """An operator's cancel and abort each call their ending's hook."""
    harness = WorkflowHarness(hooked)
    cancelled = hooked.start("hooked_application", {"number": "a4"})
    harness.run(cancelled.id, until_waiting=True)
    assert hooked.cancel(cancelled.id).status == "cancelled"
    aborted = hooked.start("hooked_application", {"number": "a5"})
    assert hooked.abort(aborted.id, reason="withdrawn by phone").status == "failed"
    assert owning_rows(hooked, "a4") == {"cancelled": "deciding|"}
    assert owning_rows(hooked, "a5") == {"aborted": "checking|withdrawn by phone"}


def test_a_cancel_scheduled_at_a_waiting_state_calls_the_cancelled_hook(hooked: Engine) -> None:
    """A cancel scheduled for a waiting state ends the run as it enters it, calling the
    ``cancelled`` hook as any cancel does."""
    run = hooked.start("hooked_application", {"number": "a8"})
    hooked.cancel(run.id, at="deciding")
    ended = WorkflowHarness(hooked).run(run.id)
    assert (ended.status, ended.state) == ("cancelled", "deciding")
    assert owning_rows(hooked, "a8") == {"cancelled": "deciding|"}


def test_a_cancel_whose_hook_raises_changes_nothing(hooked: Engine) -> None:
    """The cancel raises naming the hook; the run and the domain rows stay as they were."""
    run = hooked.start("hooked_application", {"number": "a6"})
    WorkflowHarness(hooked).run(run.id, until_waiting=True)
    RAISE_ON.add("cancelled")
    with pytest.raises(LifecycleHookError, match=r"Application.record raised .* cancelled"):
        hooked.cancel(run.id)
    assert hooked.get(run.id).status == "running"
    assert owning_rows(hooked, "a6") == {}


def test_a_success_whose_hook_raises_is_retried_as_the_step(hooked: Engine) -> None:
    """The step's move and the hook's writes roll back together; the step is retried."""
    RAISE_ON.add("succeeded")
    run = hooked.start("hooked_application", {"number": "a7", "reject": True})
    harness = WorkflowHarness(hooked)
    harness.step()
    assert hooked.get(run.id).status == "running"
    retry = hooked.history(run.id)[-1]
    assert retry.trigger == "retry"
    assert "on_end hook" in str(retry.detail)
    assert owning_rows(hooked, "a7") == {}
    RAISE_ON.clear()
    harness.advance(timedelta(hours=1))
    assert harness.run(run.id).status == "succeeded"
    assert owning_rows(hooked, "a7") == {"succeeded": "rejected|"}


def test_a_failure_whose_hook_raises_still_fails_the_run(hooked: Engine) -> None:
    """The failure commits without the hook's writes; its detail names the hook's error,
    redacted like every stored detail."""
    RAISE_ON.add("failed")
    run = hooked.start("hooked_application", {"number": "a8", "broken": True})
    info = WorkflowHarness(hooked).run(run.id)
    assert info.status == "failed"
    with hooked.db.transaction() as session:
        from statewright.models import WorkflowRun

        detail = session.get(WorkflowRun, run.id).failure_detail  # type: ignore[union-attr]
    assert "hook refuses failed" in detail["on_end_error"]
    assert "postgresql://app:***@db/loans" in detail["on_end_error"]
    assert "hunter2" not in str(detail)
    assert owning_rows(hooked, "a8") == {}


def test_unknown_endings_are_refused_naming_the_allowed_ones() -> None:
    """`@on_end` refuses a status it does not know, and an empty list, at declaration."""
    with pytest.raises(DefinitionError, match=r"'finished' is not one of: succeeded, failed"):
        on_end("succeeded", "finished")
    with pytest.raises(DefinitionError, match="at least one"):
        on_end()
