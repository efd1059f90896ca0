"""Stepping an engine in tests: one task at a time, in process, on a virtual clock.

``WorkflowHarness`` takes the engine's published messages into a local queue and
runs each through the real Celery task (``task.apply``: the same instrumented code a
worker runs, minus the broker). When nothing is queued it moves the virtual clock
to the next due timer or expired lease, so backoff, polls, waits' timeouts and run
deadlines are honoured without sleeping. Schedules fire when a test moves time on
purpose (``advance``), or looks at them after an outage (``fire_schedules``).
A test loses a message with ``drop`` and delays one with ``hold`` and ``release``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from celery.exceptions import Retry
from sqlalchemy import func, select

from statewright.api import Engine
from statewright.clock import VirtualClock
from statewright.context import Claim
from statewright.dispatch import TaskMessage
from statewright.errors import UnknownStateError, UnknownTaskError
from statewright.models.engine import WorkflowRun
from statewright.queries import RunInfo
from statewright.registry import StepOptions
from statewright.step_events import StepClaimed, StepObserver


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


class InjectedFailures(StepObserver):
    """Makes chosen attempts of chosen states fail just before their handler runs (an
    error raised on ``claimed`` counts as the handler's)."""

    def __init__(self) -> None:
        self.failures: dict[tuple[str, int], BaseException] = {}

    def claimed(self, event: StepClaimed) -> None:
        error = self.failures.get((event.step.state, event.claim.attempt))
        if error is not None:
            raise error


#: Which messages a rule applies to: a task name, or a test of the message.
MessageMatch = str | Callable[[TaskMessage], bool]


@dataclass(slots=True)
class _Rule:
    """Drop or hold the next ``remaining`` messages that ``matches`` accepts."""

    matches: Callable[[TaskMessage], bool]
    action: Literal["drop", "hold"]
    remaining: int


class WorkflowHarness:
    """Runs an engine's steps synchronously and deterministically.

    Each step is a delivery of its own: the harness turns off continuing in process,
    which depends on real time, unless ``continue_steps`` asks for it (then a delivery
    goes on for the engine's ``continue_for``, as on a worker). ``observers`` are told
    what happens to each step (``statewright.step_events``), after the failures injected
    with ``fail_at``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        continue_steps: bool = False,
        observers: Sequence[StepObserver] = (),
    ) -> None:
        if not isinstance(engine.clock, VirtualClock):
            raise TypeError("WorkflowHarness needs an engine built with a VirtualClock")
        self.engine = engine
        engine.executor.continue_for = engine.settings.continue_for if continue_steps else 0.0
        self.clock: VirtualClock = engine.clock
        self.queue = LocalQueue()
        self.deliveries: list[Delivery] = []
        self._failures = InjectedFailures()
        self._rules: list[_Rule] = []
        #: Messages lost on purpose (``drop``), and those held back (``hold``), in order.
        self.dropped: list[TaskMessage] = []
        self.held: list[TaskMessage] = []
        engine.publisher = self.queue
        for observer in (self._failures, *observers):
            engine.step_observers.add(observer)
        self._schedules_synced = False

    def fail_at(self, state: str, attempt: int, error: BaseException | None = None) -> None:
        """Make ``state``'s handler raise ``error`` on ``attempt`` (1-based), before it runs."""
        self._failures.failures[(state, attempt)] = error or RuntimeError(
            f"injected failure in {state!r} on attempt {attempt}"
        )

    def clear_failures(self) -> None:
        """Forget every failure injected with ``fail_at``."""
        self._failures.failures.clear()

    def drop(self, task: MessageMatch, *, times: int = 1) -> None:
        """Lose the next ``times`` messages of ``task`` (a task name such as
        ``"loan.underwriting"``, or a test of the message): they are taken off the queue
        and never run, as if the broker lost them. They are kept in ``dropped``."""
        self._rules.append(_Rule(self._matcher(task), "drop", self._times(times)))

    def hold(self, task: MessageMatch, *, times: int = 1) -> None:
        """Hold back the next ``times`` messages of ``task``: they are taken off the queue
        and kept in ``held`` until ``release`` delivers them (a late delivery)."""
        self._rules.append(_Rule(self._matcher(task), "hold", self._times(times)))

    def release(self) -> list[TaskMessage]:
        """Deliver every held message now, in the order held, as a worker would when
        late messages finally arrive; returns them."""
        released, self.held = self.held, []
        for message in released:
            self.deliver(message)
        return released

    def _matcher(self, task: MessageMatch) -> Callable[[TaskMessage], bool]:
        if callable(task):
            return task
        if task not in self.engine.celery.tasks:
            known = [name for name in self.engine.celery.tasks if not name.startswith("celery.")]
            raise UnknownTaskError(task, known)
        return lambda message: message.task_name == task

    @staticmethod
    def _times(times: int) -> int:
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a whole number of at least 1; got {times!r}")
        return times

    def _take(self) -> TaskMessage | None:
        """The next queued message to run, after dropping or holding those the rules
        claim; ``None`` once the queue is empty."""
        while self.queue.messages:
            message = self.queue.messages.popleft()
            rule = next((r for r in self._rules if r.matches(message)), None)
            if rule is None:
                return message
            rule.remaining -= 1
            if rule.remaining == 0:
                self._rules.remove(rule)
            (self.dropped if rule.action == "drop" else self.held).append(message)
        return None

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
        while True:
            if not self.queue.messages:
                self.engine.relay.drain()
            if not self.queue.messages and self._advance():
                self.engine.relay.drain()
                self.engine.reaper.run_once()
                self.engine.relay.drain()
            if not self.queue.messages:
                return None
            message = self._take()
            if message is not None:  # else every queued message was dropped or held
                self.deliver(message)
                return message

    def claim_next(self) -> ClaimedStep:
        """Claim the next step without running it (a worker mid-step).

        Task messages queued before it (emails, say) are run on the way.
        """
        while True:
            if not self.queue.messages:
                self.engine.relay.drain()
            message = self._take()
            if message is None:
                raise AssertionError("no step message is waiting to be claimed")
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

    def run(
        self,
        run_id: str,
        *,
        until: str | None = None,
        until_waiting: bool = False,
        max_steps: int = 10_000,
    ) -> RunInfo:
        """Step until ``run_id`` finishes or pauses (or nothing is left to do).

        ``until`` stops as soon as the run is in that state (before its step runs); a
        state the workflow does not have is refused, and a run that finishes, pauses or
        goes idle without reaching it fails the test, naming the state. The clock moves
        on to due timers, so a waiting run runs into its timeout unless ``until_waiting``
        stops it as soon as it waits in a waiting state (for a signal).
        """
        definition = self.engine.registry.get(self.engine.get(run_id).workflow)
        if until is not None and until not in definition.states:
            raise UnknownStateError(
                f"workflow {definition.name!r} has no state {until!r}; its states: "
                f"{', '.join(map(repr, definition.states))}"
            )
        for _ in range(max_steps):
            info = self.engine.get(run_id)
            if info.state == until or (until_waiting and definition.wait(info.state) is not None):
                return info
            if info.finished or info.status == "paused" or self.step() is None:
                return self._stopped(self.engine.get(run_id), until)
        raise AssertionError(f"run {run_id} did not finish within {max_steps} steps")

    @staticmethod
    def _stopped(info: RunInfo, until: str | None) -> RunInfo:
        """The run where stepping stopped; a failed test if it never reached ``until``."""
        if until is not None and info.state != until:
            raise AssertionError(
                f"run {info.id} is {info.status} in state {info.state!r} and nothing is left "
                f"to run: it did not reach state {until!r}"
            )
        return info

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
