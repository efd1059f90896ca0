"""The chaos workflow: ten states in a row, each with a database effect counted per run."""

from __future__ import annotations

import random
import time

from engine import RetryPolicy, StepContext, Workflow, step
from tests.sample_workflows import record_effect

STATES = [f"s{n}" for n in range(10)]


def _handler(state: str, initial: bool = False) -> object:
    def handle(self: object, ctx: StepContext) -> str:
        time.sleep(random.uniform(0, 0.03))
        record_effect(ctx.session, ctx.run_id, ctx.state)
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


WORKFLOWS = [Chain]
EXPECTED = [(None, "start", "s0")] + [
    (state, f"{state}_done", STATES[n + 1] if n + 1 < len(STATES) else "done")
    for n, state in enumerate(STATES)
]
