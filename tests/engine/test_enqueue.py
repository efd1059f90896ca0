"""Enqueueing tasks by name from steps and tasks: short names, full names, unknown names."""

from __future__ import annotations

import random
from typing import Any, Literal

import pytest

from statewright import (
    Engine,
    InMemoryMetrics,
    Settings,
    StepContext,
    TaskContext,
    TaskGroup,
    UnknownTaskError,
    VirtualClock,
    Workflow,
    step,
    task,
)
from statewright.testing import WorkflowHarness

#: What the tasks below did, in order: (task, argument).
DONE: list[tuple[str, Any]] = []


class LoanApplication(Workflow):
    """Enqueues the task named in its params, then finishes."""

    name = "loan_application"
    transitions = [("filed", "filing", "done")]
    terminal = ["done"]

    @step(initial=True)
    def filing(self, ctx: StepContext) -> Literal["filed"]:
        ctx.enqueue(ctx.params["task"], loan=ctx.params["loan"])
        return "filed"

    @task()
    def purge_documents(self, tc: TaskContext, loan: str) -> None:
        DONE.append(("purge_documents", loan))

    @task()
    def chain(self, tc: TaskContext, loan: str) -> None:
        with tc.transaction() as session:
            tc.enqueue(session, "notices.archive", loan=loan)


class Notices(TaskGroup):
    """A task group whose task the loan workflow enqueues by its full name."""

    name = "notices"

    @task()
    def archive(self, tc: TaskContext, loan: str) -> None:
        DONE.append(("archive", loan))


@pytest.fixture
def loans(sqlite_url: str) -> Engine:
    DONE.clear()
    return Engine(
        Settings(database_url=sqlite_url),
        [LoanApplication, Notices],
        clock=VirtualClock(),
        metrics=InMemoryMetrics(),
        rng=random.Random(1),
    )


@pytest.mark.parametrize(
    ("name", "done"),
    [
        ("purge_documents", ("purge_documents", "L-1")),
        ("loan_application.purge_documents", ("purge_documents", "L-1")),
        ("notices.archive", ("archive", "L-1")),
    ],
)
def test_a_step_enqueues_any_registered_task(
    loans: Engine, name: str, done: tuple[str, str]
) -> None:
    """A step enqueues its workflow's task by short or full name, and a group's by full name."""
    run = loans.start("loan_application", {"task": name, "loan": "L-1"})
    WorkflowHarness(loans).run_all()
    assert loans.get(run.id).status == "succeeded"
    assert [done] == DONE


def test_a_task_enqueues_another_owners_task_by_full_name(loans: Engine) -> None:
    """A workflow's task enqueues a task group's task by its full name."""
    run = loans.start("loan_application", {"task": "chain", "loan": "L-2"})
    WorkflowHarness(loans).run_all()
    assert loans.get(run.id).status == "succeeded"
    assert DONE == [("archive", "L-2")]


def test_an_unknown_task_fails_the_run_at_once(loans: Engine) -> None:
    """An unknown task name fails the run on its first attempt, naming the registered tasks."""
    run = loans.start("loan_application", {"task": "loanflow.purge_documents", "loan": "L-3"})
    WorkflowHarness(loans).run_all()
    info = loans.get(run.id)
    assert info.status == "failed"
    assert [h.trigger for h in loans.history(run.id)] == ["start", "fail"]
    reason = info.failure_reason or ""
    assert "no task named 'loanflow.purge_documents'" in reason
    assert (
        "registered tasks: 'loan_application.chain', 'loan_application.purge_documents', "
        "'notices.archive'" in reason
    )
    assert not DONE


def test_engine_enqueue_refuses_an_unknown_task(loans: Engine) -> None:
    """Enqueueing an unknown task outside a step raises a permanent error naming the name."""
    with loans.db.transaction() as session, pytest.raises(UnknownTaskError) as raised:
        loans.enqueue(session, "loan_application.nothing", {})
    assert raised.value.name == "loan_application.nothing"
    assert "'notices.archive'" in raised.value.reason
