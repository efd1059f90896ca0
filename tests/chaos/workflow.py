"""The chaos workflow: ten states in a row, each with a database effect counted per run,
and a plain task dispatched from the middle one whose effect is counted too."""

from __future__ import annotations

import random
import time

from sqlalchemy.exc import DBAPIError

from statewright import RetryPolicy, StepContext, Workflow, step
from statewright.context import TaskContext
from statewright.definition import task
from tests.sample_workflows import record_effect

STATES = [f"s{n}" for n in range(10)]
#: The state whose step dispatches the plain task ``chain.note`` through the outbox.
TASK_FROM = "s4"
#: The effect the plain task records, once per run.
TASK_EFFECT = "note"


def _handler(state: str, initial: bool = False) -> object:
    def handle(self: object, ctx: StepContext) -> str:
        time.sleep(random.uniform(0, 0.03))
        record_effect(ctx.session, ctx.run_id, ctx.state)
        if state == TASK_FROM:
            ctx.enqueue("note", run_id=ctx.run_id)
        return f"{state}_done"

    handle.__name__ = state
    return step(state, initial=initial)(handle)  # type: ignore[arg-type]


class Chain(Workflow):
    """s0 -> s1 -> ... -> s9 -> done; every step increments its effect counter."""

    name = "chain"
    transitions = [
        (f"{state}_done", state, STATES[n + 1] if n + 1 < len(STATES) else "done")
        for n, state in enumerate(STATES)
    ]
    terminal = ["done"]
    retry = RetryPolicy(max_attempts=20, backoff=0.2, multiplier=2.0, max_backoff=2.0)
    time_limit = 10.0

    locals().update({state: _handler(state, n == 0) for n, state in enumerate(STATES)})

    # the chaos terminates database connections: a task retries what that raises, as a
    # real task that must survive it would (its own retry policy decides, not the engine)
    @task(autoretry_for=(ConnectionError, OSError, DBAPIError), max_retries=20, time_limit=10)
    def note(self, tc: TaskContext, run_id: str) -> None:
        """Record the run's note once: the effect and the task's done mark commit together."""
        time.sleep(random.uniform(0, 0.03))
        with tc.transaction() as session:
            record_effect(session, run_id, TASK_EFFECT)
            tc.done(session)


WORKFLOWS = [Chain]
EXPECTED = [(None, "start", "s0")] + [
    (state, f"{state}_done", STATES[n + 1] if n + 1 < len(STATES) else "done")
    for n, state in enumerate(STATES)
]
