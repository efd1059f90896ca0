"""Workflow tasks, failure tasks, configured workflow instances and owning records."""

from __future__ import annotations

import random
from typing import Any, Literal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from statewright import (
    DefinitionError,
    Engine,
    InMemoryMetrics,
    PermanentError,
    Settings,
    StepContext,
    VirtualClock,
    Workflow,
    step,
)
from statewright.context import TaskContext
from statewright.definition import task
from statewright.testing import WorkflowHarness


class Mailer(Workflow):
    """Sends a note from a task after its step commits, and reports failures."""

    name = "mailer"
    transitions = [("sent", "sending", "done")]
    terminal = ["done"]
    failure_task = "report"

    def __init__(self, outbox: list[Any] | None = None) -> None:
        self.outbox = outbox if outbox is not None else []

    @step(initial=True)
    def sending(self, ctx: StepContext) -> Literal["sent"]:
        if ctx.params.get("broken"):
            raise PermanentError("the address book is broken")
        ctx.enqueue("deliver", to=ctx.params["to"])
        return "sent"

    @task()
    def deliver(self, tc: TaskContext, to: str) -> None:
        self.outbox.append(("deliver", to))

    @task()
    def report(self, tc: TaskContext, run_id: str) -> None:
        self.outbox.append(("failed", run_id))


@pytest.fixture
def mail_engine(sqlite_url: str) -> tuple[Engine, list[Any]]:
    outbox: list[Any] = []
    engine = Engine(
        Settings(database_url=sqlite_url),
        [Mailer(outbox)],
        clock=VirtualClock(),
        metrics=InMemoryMetrics(),
        rng=random.Random(1),
    )
    return engine, outbox


def test_task_runs_after_the_step_commits(mail_engine: tuple[Engine, list[Any]]) -> None:
    """A task enqueued by a step is published after the step commits and runs with its args."""
    engine, outbox = mail_engine
    run = engine.start("mailer", {"to": "kim@example.com"})
    harness = WorkflowHarness(engine)
    harness.run_all()
    assert engine.get(run.id).status == "succeeded"
    assert outbox == [("deliver", "kim@example.com")]
    names = [m.task_name for m in harness.queue.published]
    assert names == ["mailer.sending", "mailer.deliver"]


def test_failure_task_runs_once_when_a_run_fails(mail_engine: tuple[Engine, list[Any]]) -> None:
    """A failed run enqueues the workflow's failure task in the failing transaction."""
    engine, outbox = mail_engine
    run = engine.start("mailer", {"to": "x", "broken": True})
    WorkflowHarness(engine).run_all()
    assert engine.get(run.id).status == "failed"
    assert outbox == [("failed", run.id)]


def test_failed_step_sends_no_task(mail_engine: tuple[Engine, list[Any]]) -> None:
    """A task enqueued by a step that then fails is never sent."""
    engine, outbox = mail_engine
    run = engine.start("mailer", {"broken": True, "to": "x"})
    WorkflowHarness(engine).run_all()
    assert ("deliver", "x") not in outbox
    assert engine.get(run.id).status == "failed"


def test_setup_writes_in_the_start_transaction(mail_engine: tuple[Engine, list[Any]]) -> None:
    """A failing setup leaves nothing of the run behind."""
    engine, _ = mail_engine

    def setup(session: Session, run_id: str) -> None:
        session.execute(text("SELECT 1"))
        raise ValueError(f"cannot set up {run_id}")

    with pytest.raises(ValueError, match="cannot set up"):
        engine.start("mailer", {"to": "x"}, setup=setup)
    assert engine.list() == []


def test_task_named_like_a_state_is_refused() -> None:
    """A task may not share a state's name (both would be '<workflow>.<name>')."""
    with pytest.raises(DefinitionError, match=r"task 'sending' has the name of a state"):

        class Clash(Workflow):
            name = "clash"
            transitions = [("sent", "sending", "done")]
            terminal = ["done"]

            @step(initial=True)
            def sending(self, ctx: StepContext) -> str:
                return "sent"

            @task("sending")
            def also_sending(self, tc: TaskContext) -> None:
                pass


def test_unknown_failure_task_is_refused() -> None:
    """failure_task must name one of the workflow's tasks."""
    with pytest.raises(DefinitionError, match=r"failure_task 'alarm' is not one of its tasks"):

        class Forgetful(Workflow):
            name = "forgetful"
            transitions = [("sent", "sending", "done")]
            terminal = ["done"]
            failure_task = "alarm"

            @step(initial=True)
            def sending(self, ctx: StepContext) -> str:
                return "sent"
