"""A workflow whose step dispatches plain tasks (also imported by real worker processes).

Each ``notices.notify`` task records its effect in ``test_effects`` (row ``notice-N`` of
its run) and marks itself done in the same transaction; it can fail, sleep or ack early
on its first attempts, as a test asks.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from engine import StepContext, Workflow, step
from engine.context import TaskContext
from engine.definition import task
from tests.sample_workflows import record_effect


class Notices(Workflow):
    """One step that dispatches ``count`` plain tasks through the outbox."""

    name = "notices"
    transitions = [("sent", "sending", "done")]
    terminal = ["done"]

    def __init__(self, seen: list[dict[str, Any]] | None = None) -> None:
        #: What each delivery that ran saw (in process only).
        self.seen = seen if seen is not None else []

    @step(initial=True)
    def sending(self, ctx: StepContext) -> Literal["sent"]:
        options = ctx.params.get("task", {})
        for n in range(int(ctx.params.get("count", 1))):
            ctx.enqueue("notify", run_id=ctx.run_id, n=n, **options)
        return "sent"

    @task(autoretry_for=(ConnectionError,), max_retries=3, default_retry_delay=30, time_limit=4)
    def notify(
        self, tc: TaskContext, run_id: str, n: int, fail: int = 0, sleep: float = 0.0
    ) -> None:
        """Record notice ``n`` once; fail the first ``fail`` attempts, sleep on the first."""
        delivery = tc.delivery
        attempt = delivery.attempt if delivery is not None else 0
        self.seen.append(
            {"n": n, "attempt": attempt, "key": delivery.idempotency_key if delivery else None}
        )
        if attempt == 1 and sleep:
            time.sleep(sleep)
        if attempt <= fail:
            raise ConnectionError(f"notice {n} attempt {attempt} lost its connection")
        with tc.transaction() as session:
            record_effect(session, run_id, f"notice-{n}")
            record_effect(session, run_id, f"notice-{n}-attempt-{attempt}")
            tc.done(session)


WORKFLOWS: list[Any] = [Notices]
