"""Workflows for the step protocol's edge cases (also run by a second OS process).

``Review``'s handlers read the database first, then wait as the test asks (a file to
say they are inside, seconds to hold, or a hook a test installs for its threads),
then write their effect: the shape of a long step that reads, works, and writes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from statewright import Engine, Poll, RetryPolicy, Settings, StepContext, Workflow, step
from tests.sample_workflows import effects, record_effect

#: Called inside a ``Review`` handler of the named state, after its first read.
HOOKS: dict[str, Callable[[StepContext], None]] = {}


def _read_work_write(ctx: StepContext) -> None:
    ctx.session.execute(select(effects.c.count).where(effects.c.run_id == ctx.run_id)).all()
    hook = HOOKS.get(ctx.state)
    if hook is not None:
        hook(ctx)
    inside = ctx.params.get("inside_file")
    if inside:
        Path(inside).write_text(ctx.state)
    time.sleep(float(ctx.params.get("hold", {}).get(ctx.state, 0)))
    record_effect(ctx.session, ctx.run_id, ctx.state)


class Review(Workflow):
    """Collect, then review; an operator may skip collecting with a signal."""

    name = "review"
    transitions = [
        ("collected", "collecting", "reviewing"),
        ("skip", "collecting", "reviewing"),
        ("reviewed", "reviewing", "done"),
    ]
    terminal = ["done"]
    retry = RetryPolicy(max_attempts=3, backoff=1.0, jitter=0.0)
    time_limit = 60.0

    @step(initial=True)
    def collecting(self, ctx: StepContext) -> Literal["collected"]:
        _read_work_write(ctx)
        return "collected"

    @step()
    def reviewing(self, ctx: StepContext) -> Literal["reviewed"]:
        _read_work_write(ctx)
        return "reviewed"


class Gathering(Workflow):
    """Keeps notes in its context and waits for a signal to sum them up."""

    name = "gathering"
    transitions = [("enough", "gathering", "summing"), ("summed", "summing", "done")]
    terminal = ["done"]

    @step(initial=True)
    def gathering(self, ctx: StepContext) -> Poll:
        ctx.context["notes"] = "n" * int(ctx.params["notes"])
        return Poll(after=60)

    @step()
    def summing(self, ctx: StepContext) -> Literal["summed"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        return "summed"


class Careless(Workflow):
    """A handler that writes, then calls what the run's params name on its session."""

    name = "careless"
    transitions = [("written", "writing", "done")]
    terminal = ["done"]

    @step(initial=True, reason="We could not write")
    def writing(self, ctx: StepContext) -> Literal["written"]:
        record_effect(ctx.session, ctx.run_id, ctx.state)
        call = getattr(ctx.session, str(ctx.params["call"]))
        if ctx.params.get("swallow"):
            # a handler that hides the refusal still fails its step
            with contextlib.suppress(Exception):
                call()
        else:
            call()
        return "written"


EDGE_WORKFLOWS = [Review, Gathering, Careless]


def run_one_step(url: str, workflow: str, state: str, run_id: str, token: int) -> None:
    """In a process of its own: run one delivery of ``state``'s step, as a worker would."""
    engine = Engine(Settings(database_url=url, continue_for=0.0), EDGE_WORKFLOWS)
    try:
        engine.executor.run_step(engine.registry.step(workflow, state), run_id, token)
    finally:
        engine.close()
