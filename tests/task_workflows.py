"""A workflow whose step dispatches plain tasks (also imported by real worker processes).

Each ``notices.notify`` task records its effect in ``test_effects`` (row ``notice-N`` of
its run) and marks itself done in the same transaction; it can fail, sleep or ack early
on its first attempts, as a test asks.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

from statewright import SiloMode, StepContext, Workflow, instrumented_task, step
from statewright.context import TaskContext
from statewright.definition import TaskGroup, task
from tests.sample_workflows import record_effect

#: The queue ``tests.routed`` declares (unique to the process that declares it).
ROUTED_QUEUE = f"statewright-test-routed-{os.getpid()}"


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

    @task(acks_late=False, time_limit=4)
    def notify_early(self, tc: TaskContext, run_id: str, n: int, sleep: float = 0.0) -> None:
        """``notify`` for a task acknowledged as soon as a worker takes it (so a worker
        killed while running it takes the message with it)."""
        self.notify(tc, run_id, n, sleep=sleep)


class Silos(TaskGroup):
    """One task for each silo of a split deployment; each records its effect."""

    name = "silos"

    @task(silo_mode=SiloMode.CONTROL)
    def control_only(self, tc: TaskContext, run_id: str) -> None:
        with tc.transaction() as session:
            record_effect(session, run_id, "control")

    @task(silo_mode=SiloMode.REGION)
    def region_only(self, tc: TaskContext, run_id: str) -> None:
        with tc.transaction() as session:
            record_effect(session, run_id, "region")


@instrumented_task(name="tests.regional", silo_mode=SiloMode.REGION)
def regional() -> str:
    """A shared task limited to the region silo."""
    return "ran"


@instrumented_task(name="tests.routed", queue=ROUTED_QUEUE)
def routed(n: int) -> int:
    """A shared task on a queue of its own."""
    return n


WORKFLOWS: list[Any] = [Notices, Silos]
