"""Workflows the test suite runs (also imported by real worker processes in tests).

Every step records its database effect in ``test_effects`` (one row per run and
state, counting how often the effect was applied) inside the step's transaction.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.orm import Session

from statewright import PermanentError, Poll, RetryPolicy, StepContext, Workflow, step
from statewright.context import TaskContext
from statewright.definition import TaskGroup, task
from statewright.timers import SignalContext
from statewright.waits import Wait, on_signal

test_metadata = MetaData()
effects = Table(
    "test_effects",
    test_metadata,
    Column("run_id", String(32), primary_key=True),
    Column("state", String(100), primary_key=True),
    Column("count", Integer, nullable=False),
)

FAST_RETRY = RetryPolicy(max_attempts=3, backoff=2.0, multiplier=2.0, jitter=0.0)


def record_effect(session: Session, run_id: str, state: str) -> None:
    """Count one application of ``state``'s effect for ``run_id``."""
    changed = session.execute(
        update(effects)
        .where(effects.c.run_id == run_id, effects.c.state == state)
        .values(count=effects.c.count + 1)
    ).rowcount
    if not changed:
        session.execute(effects.insert().values(run_id=run_id, state=state, count=1))


def effect_counts(session: Session, run_id: str) -> dict[str, int]:
    rows = session.execute(
        select(effects.c.state, effects.c.count).where(effects.c.run_id == run_id)
    )
    return {state: count for state, count in rows}


def _misbehave(ctx: StepContext) -> None:
    """Fail the way the run's params ask for, in this state."""
    failures = ctx.params.get("fail", {}).get(ctx.state, 0)
    if ctx.attempt <= failures:
        raise ConnectionError(f"{ctx.state} attempt {ctx.attempt} lost its connection")
    if ctx.params.get("permanent") == ctx.state:
        raise PermanentError(f"the input cannot be {ctx.state}")
    sleep = ctx.params.get("sleep", {}).get(ctx.state)
    if sleep and ctx.attempt <= ctx.params.get("sleep_attempts", 99):
        time.sleep(sleep)


class Pipeline(Workflow):
    """Three states in a row, each with a database effect."""

    name = "pipeline"
    transitions = [
        ("fetched", "fetching", "transforming"),
        ("transformed", "transforming", "storing"),
        ("stored", "storing", "done"),
    ]
    terminal = ["done"]
    retry = FAST_RETRY
    time_limit = 20.0

    @step(initial=True, reason="We could not fetch the input")
    def fetching(self, ctx: StepContext) -> Literal["fetched"]:
        _misbehave(ctx)
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "fetched"

    @step(reason="We could not transform the input")
    def transforming(self, ctx: StepContext) -> str:
        _misbehave(ctx)
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return str(ctx.params.get("trigger", "transformed"))

    @step(reason="We could not store the result")
    def storing(self, ctx: StepContext) -> Literal["stored"]:
        _misbehave(ctx)
        record_effect(ctx.session, ctx.run_id, ctx.state)
        ctx.context["stored_by"] = ctx.idempotency_key
        return "stored"


class Waiter(Workflow):
    """Polls until the work it waits for is ready, within a deadline."""

    name = "waiter"
    transitions = [("ready", "waiting", "finishing"), ("finished", "finishing", "done")]
    terminal = ["done"]
    retry = FAST_RETRY

    @step(initial=True, poll_deadline=timedelta(seconds=30), reason="The work never got ready")
    def waiting(self, ctx: StepContext) -> Literal["ready"] | Poll:
        _misbehave(ctx)
        if ctx.polls < int(ctx.params.get("ready_after", 3)):
            return Poll(after=float(ctx.params.get("every", 10)))
        return "ready"

    @step()
    def finishing(self, ctx: StepContext) -> Literal["finished"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "finished"


class Approval(Workflow):
    """Waits for a person's decision, delivered as a signal."""

    name = "approval"
    transitions = [
        ("approved", "awaiting", "applying"),
        ("rejected", "awaiting", "rejected"),
        ("applied", "applying", "applied"),
    ]
    terminal = ["applied", "rejected"]

    @step(initial=True)
    def awaiting(self, ctx: StepContext) -> Poll:
        return Poll(after=60)

    @step()
    def applying(self, ctx: StepContext) -> Literal["applied"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "applied"


class Review(Workflow):
    """Asks for a submission, waits up to a week for it (or a withdrawal), then checks it.

    A deadline (given at start) takes ``timed_out`` while waiting or checking, and fails
    the run anywhere else.
    """

    name = "review"
    transitions = [
        ("asked", "asking", "awaiting"),
        ("submitted", "awaiting", "checking"),
        ("withdrawn", "awaiting", "withdrawn"),
        ("expired", "awaiting", "expired"),
        ("checked", "checking", "done"),
        ("timed_out", "awaiting", "timed_out"),
        ("timed_out", "checking", "timed_out"),
    ]
    terminal = ["done", "withdrawn", "expired", "timed_out"]
    retry = FAST_RETRY
    waits = {
        "awaiting": Wait(
            signals=("submitted", "withdrawn"), timeout=timedelta(days=7), on_timeout="expired"
        )
    }
    on_deadline = "timed_out"
    deadline_reason = "The review took too long"

    @step(initial=True)
    def asking(self, ctx: StepContext) -> Literal["asked"]:
        _misbehave(ctx)
        return "asked"

    @on_signal("awaiting")
    def received(self, ctx: SignalContext) -> None:
        record_effect(ctx.session, ctx.run_id, f"signal:{ctx.trigger}")
        if ctx.data.get("refuse"):  # after a write, which must not land
            raise PermanentError(f"submission refused: {ctx.data['refuse']}")
        ctx.context["submission"] = ctx.data.get("files")

    @step()
    def checking(self, ctx: StepContext) -> Literal["checked"]:
        _misbehave(ctx)
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "checked"


class Callback(Workflow):
    """Calls, then waits two seconds for an answer: a wait short enough for real workers."""

    name = "callback"
    transitions = [
        ("called", "calling", "listening"),
        ("answered", "listening", "noting"),
        ("unanswered", "listening", "gave_up"),
        ("noted", "noting", "done"),
    ]
    terminal = ["done", "gave_up"]
    retry = FAST_RETRY
    time_limit = 20.0
    waits = {"listening": Wait(signals=("answered",), timeout=2.0, on_timeout="unanswered")}
    deadline_reason = "The call ran out of time"

    @step(initial=True)
    def calling(self, ctx: StepContext) -> Literal["called"]:
        _misbehave(ctx)
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "called"

    @step()
    def noting(self, ctx: StepContext) -> Literal["noted"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "noted"


WORKFLOWS: list[Any] = [Pipeline, Waiter, Approval, Review, Callback]


class Brief(Workflow):
    """One short step with a tight time limit, for crash and lease tests."""

    name = "brief"
    transitions = [("worked", "working", "done")]
    terminal = ["done"]
    retry = FAST_RETRY
    time_limit = 3.0

    @step(initial=True, reason="The work did not finish")
    def working(self, ctx: StepContext) -> Literal["worked"]:
        _misbehave(ctx)
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "worked"


WORKFLOWS.append(Brief)


class Probe(TaskGroup):
    """A plain task that records whether the row its sender committed was visible to it."""

    name = "probe"

    @task()
    def look(self, tc: TaskContext, marker: str) -> None:
        with tc.transaction() as session:
            seen = session.execute(
                select(effects.c.count).where(
                    effects.c.run_id == marker, effects.c.state == "sender"
                )
            ).scalar()
            session.execute(
                effects.insert().values(run_id=marker, state="probe", count=1 if seen else 0)
            )


WORKFLOWS.append(Probe)
