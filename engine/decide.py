"""The pure core: given a run, a step's outcome (or error) and the time, decide what next.

No I/O here; the clock reading and randomness are passed in, so execution, tests
and replay reach the same decision from the same inputs.
"""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from statewright.definition import Definition
from statewright.errors import PermanentError
from statewright.outcomes import Poll
from statewright.registry import StepOptions


@dataclass(frozen=True, slots=True)
class RunView:
    """What a decision needs to know about a run."""

    state: str
    attempt: int
    polls: int
    state_entered_at: datetime


@dataclass(frozen=True, slots=True)
class Advance:
    trigger: str
    dest: str


@dataclass(frozen=True, slots=True)
class PollAgain:
    not_before: datetime


@dataclass(frozen=True, slots=True)
class RetryLater:
    not_before: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FailRun:
    reason: str
    detail: dict[str, Any]


Decision = Advance | PollAgain | RetryLater | FailRun


def decide_outcome(
    definition: Definition, step: StepOptions, run: RunView, outcome: object, now: datetime
) -> Decision:
    """What a handler's return value means for the run."""
    if isinstance(outcome, Poll):
        return _decide_poll(step, run, outcome, now)
    allowed = definition.triggers_from(run.state)
    listed = ", ".join(map(repr, allowed)) or "(none)"
    if not isinstance(outcome, str):
        return FailRun(
            f"handler of state {run.state!r} returned {outcome!r}; it must return a trigger "
            f"({listed}) or Poll(after=...)",
            {"returned": repr(outcome)},
        )
    dest = definition.destination(run.state, outcome)
    if dest is None:
        return FailRun(
            f"handler of state {run.state!r} returned trigger {outcome!r}, which is not "
            f"declared from {run.state!r}; allowed: {listed}",
            {"returned": outcome, "allowed": list(allowed)},
        )
    return Advance(outcome, dest)


def _decide_poll(step: StepOptions, run: RunView, poll: Poll, now: datetime) -> Decision:
    polls = run.polls + 1
    if step.poll_limit is not None and polls > step.poll_limit:
        return FailRun(
            f"{step.reason} (still waiting after {step.poll_limit} polls)",
            {"polls": run.polls, "poll_limit": step.poll_limit},
        )
    not_before = now + poll.after
    if step.poll_deadline is not None:
        deadline = run.state_entered_at + step.poll_deadline
        if now >= deadline:
            return FailRun(
                f"{step.reason} (still waiting when the {_human(step.poll_deadline)} "
                "poll deadline passed)",
                {"polls": run.polls, "deadline": deadline.isoformat()},
            )
        not_before = min(not_before, deadline)
    return PollAgain(not_before)


def decide_error(
    step: StepOptions, run: RunView, error: BaseException, now: datetime, rng: random.Random
) -> Decision:
    """Whether a handler's error earns another attempt, and when; or fails the run."""
    detail = error_detail(error, attempt=run.attempt, max_attempts=step.retry.max_attempts)
    if isinstance(error, PermanentError):
        return FailRun(error.reason, detail)
    if step.retry.should_retry(error, run.attempt):
        return RetryLater(now + step.retry.delay(run.attempt, rng), detail)
    return FailRun(step.reason, detail)


def decide_lost_worker(step: StepOptions, run: RunView) -> FailRun | None:
    """A claim past the last attempt: the previous attempt died without finishing."""
    if run.attempt <= step.retry.max_attempts:
        return None
    spent = step.retry.max_attempts
    return FailRun(
        f"{step.reason} (worker lost: none of {spent} attempt(s) finished)",
        {
            "error_type": "WorkerLost",
            "error_message": f"{spent} attempt(s) started, none finished",
            "attempt": spent,
            "max_attempts": spent,
        },
    )


def error_detail(error: BaseException, **extra: Any) -> dict[str, Any]:
    """The real error, for engineers: its type, message and traceback."""
    kind = type(error)
    return {
        "error_type": f"{kind.__module__}.{kind.__qualname__}",
        "error_message": str(error),
        "traceback": "".join(traceback.format_exception(error))[-8000:],
        **extra,
    }


def _human(span: timedelta) -> str:
    seconds = span.total_seconds()
    return f"{seconds:g}s" if seconds < 120 else f"{seconds / 60:g}min"
