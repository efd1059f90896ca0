"""Stepping an engine in tests: one task at a time, in process, on a virtual clock.

``WorkflowHarness`` takes the engine's published messages into a local queue and
runs each through the real Celery task (``task.apply``: the same instrumented code a
worker runs, minus the broker). When nothing is queued it moves the virtual clock
to the next due timer or expired lease, so backoff, polls, waits' timeouts and run
deadlines are honoured without sleeping. Schedules fire when a test moves time on
purpose (``advance``), or looks at them after an outage (``fire_schedules``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.exceptions import Retry
from sqlalchemy import func, select

from statewright.api import Engine
from statewright.clock import VirtualClock
from statewright.context import Claim
from statewright.dispatch import TaskMessage
from statewright.models.engine import WorkflowRun
from statewright.queries import RunInfo
from statewright.registry import StepOptions


class LocalQueue:
    """A publisher that keeps messages in a list instead of a broker."""

    def __init__(self) -> None:
        self.messages: deque[TaskMessage] = deque()
        self.published: list[TaskMessage] = []

    def publish(self, messages: Sequence[TaskMessage]) -> int:
        self.messages.extend(messages)
        self.published.extend(messages)
        return len(messages)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message the harness ran, and when (virtual time)."""

    message: TaskMessage
    at: datetime


class WorkflowHarness:
    """Runs an engine's steps synchronously and deterministically.

    Each step is a delivery of its own: the harness turns off continuing in process,
    which depends on real time, unless ``continue_steps`` asks for it (then a delivery
    goes on for the engine's ``continue_for``, as on a worker).
    """

    def __init__(self, engine: Engine, *, continue_steps: bool = False) -> None:
        if not isinstance(engine.clock, VirtualClock):
            raise TypeError("WorkflowHarness needs an engine built with a VirtualClock")
        self.engine = engine
        engine.executor.continue_for = engine.settings.continue_for if continue_steps else 0.0
        self.clock: VirtualClock = engine.clock
        self.queue = LocalQueue()
        self.deliveries: list[Delivery] = []
        self._failures: dict[tuple[str, int], BaseException] = {}
        engine.publisher = self.queue
        engine.executor.before_handler = self._inject
        self._schedules_synced = False

    def fail_at(self, state: str, attempt: int, error: BaseException | None = None) -> None:
        """Make ``state``'s handler raise ``error`` on ``attempt`` (1-based), before it runs."""
        self._failures[(state, attempt)] = error or RuntimeError(
            f"injected failure in {state!r} on attempt {attempt}"
        )

    def clear_failures(self) -> None:
        """Forget every failure injected with ``fail_at``."""
        self._failures.clear()

    def _inject(self, step: StepOptions, claim: Claim) -> None:
        error = self._failures.get((step.state, claim.attempt))
        if error is not None:
            raise error

    def assert_transitions(self, run_id: str, expected: Sequence[str]) -> None:
        """Assert the run's history as ``from --trigger--> to`` lines, with a readable diff."""
        actual = [
            f"{h.from_state or ''} --{h.trigger}--> {h.to_state}"
            for h in self.engine.history(run_id)
        ]
        if list(expected) != actual:
            raise AssertionError(
                "transitions differ:\n  expected:\n    "
                + "\n    ".join(expected)
                + "\n  actual:\n    "
                + "\n    ".join(actual)
            )

    def deliver(self, message: TaskMessage) -> None:
        """Run one message through its Celery task, as a worker would."""
        self.deliveries.append(Delivery(message, self.clock.now()))
        task = self.engine.celery.tasks[message.task_name]
        result = task.apply(
            args=message.args, kwargs=message.kwargs, headers=message.headers(time.time())
        )
        if isinstance(result.result, BaseException) and not isinstance(result.result, Retry):
            raise result.result  # a retry is a durable timer in the outbox, like a worker's

    def step(self) -> TaskMessage | None:
        """Run the next message, moving time forward if nothing is due; ``None`` when idle."""
        if not self.queue.messages:
            self.engine.relay.drain()
        if not self.queue.messages and self._advance():
            self.engine.relay.drain()
            self.engine.reaper.run_once()
            self.engine.relay.drain()
        if not self.queue.messages:
            return None
        message = self.queue.messages.popleft()
        self.deliver(message)
        return message

    def claim_next(self) -> ClaimedStep:
        """Claim the next step without running it (a worker mid-step).

        Task messages queued before it (emails, say) are run on the way.
        """
        while True:
            if not self.queue.messages:
                self.engine.relay.drain()
            if not self.queue.messages:
                raise AssertionError("no step message is waiting to be claimed")
            message = self.queue.messages.popleft()
            workflow, _, state = message.task_name.partition(".")
            registry = self.engine.registry
            if registry.has_step(workflow, state) and registry.step(workflow, state).wait is None:
                break
            self.deliver(message)  # a task or a timer, not a step: run it as a worker would
        step = self.engine.registry.step(workflow, state)
        claim = self.engine.executor.claim_step(
            step, message.kwargs["run_id"], message.kwargs["token"]
        )
        if claim is None:
            raise AssertionError(f"{message.task_name} for {message.kwargs} was not claimable")
        return ClaimedStep(self.engine, step, claim, message)

    def run(self, run_id: str, *, until_waiting: bool = False, max_steps: int = 10_000) -> RunInfo:
        """Step until ``run_id`` finishes or pauses (or nothing is left to do).

        The clock moves on to due timers, so a waiting run runs into its timeout unless
        ``until_waiting`` stops it as soon as it waits in a waiting state (for a signal).
        """
        definition = self.engine.registry.get(self.engine.get(run_id).workflow)
        for _ in range(max_steps):
            info = self.engine.get(run_id)
            if info.finished or info.status == "paused":
                return info
            if until_waiting and definition.wait(info.state) is not None:
                return info
            if self.step() is None:
                return self.engine.get(run_id)
        raise AssertionError(f"run {run_id} did not finish within {max_steps} steps")

    def run_all(self, *, max_steps: int = 100_000) -> int:
        """Step until nothing is left to do; returns the number of messages run."""
        for count in range(max_steps):
            if self.step() is None:
                return count
        raise AssertionError(f"still busy after {max_steps} steps")

    def fire_schedules(self) -> list[str]:
        """One relay's look at the schedules at the current virtual time, as a relay
        coming back after an outage would: starts what is due (by each schedule's
        missed-fire policy); returns the ids of the runs started, by schedule and fire time."""
        if not self._schedules_synced:
            self.engine.schedules.sync()
            self._schedules_synced = True
        before = self._run_keys()
        self.engine.schedules.fire_due()
        started = self._run_keys().items() - before.items()
        return [run_id for run_id, _ in sorted(started, key=lambda item: item[1])]

    def advance(self, by: timedelta | float) -> list[str]:
        """Move the virtual clock forward by ``by``, stopping at every fire time on the
        way to fire it, as a relay that never stopped would; returns the runs started.

        Steps are not run: ``run_all`` runs them (and the runs' own timers).
        """
        target = self.clock.now() + (by if isinstance(by, timedelta) else timedelta(seconds=by))
        started = self.fire_schedules()
        scheduler = self.engine.schedules.scheduler
        while (due := scheduler.next_due(after=self.clock.now())) and due <= target:
            self.clock.advance_to(due)
            started += self.fire_schedules()
        self.clock.advance_to(target)
        return started

    def _run_keys(self) -> dict[str, str]:
        """Every run's id and idempotency key (a scheduled run's key ends with its fire time)."""
        with self.engine.db.reads() as session:
            rows = session.execute(select(WorkflowRun.id, WorkflowRun.idempotency_key))
            return {run_id: key or "" for run_id, key in rows}

    def _advance(self) -> bool:
        """Move the clock to the next timer or lease expiry; ``False`` if there is none."""
        due = [t for t in (self.engine.relay.next_due(), self._next_lease()) if t is not None]
        if not due:
            return False
        self.clock.advance_to(min(due))
        return True

    def _next_lease(self) -> datetime | None:
        with self.engine.db.reads() as session:
            lease: datetime | None = session.execute(
                select(func.min(WorkflowRun.lease_expires_at)).where(
                    WorkflowRun.status == "running"
                )
            ).scalar()
        # the reaper takes leases strictly past their expiry
        return None if lease is None else lease + timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ClaimedStep:
    """A step claimed by a pretend worker: finish it, or abandon it as if the worker died."""

    engine: Engine
    step: StepOptions
    claim: Claim
    message: TaskMessage

    def finish(self) -> RunInfo:
        """Run the handler and complete the step, as the worker would have."""
        self.engine.executor.execute(self.step, self.claim)
        return self.engine.get(self.claim.run_id)


@contextmanager
def captured_queue(engine: Engine) -> Iterator[LocalQueue]:
    """Collect what ``engine`` publishes while the block runs."""
    previous = engine.publisher
    queue = LocalQueue()
    engine.publisher = queue
    try:
        yield queue
    finally:
        engine.publisher = previous
