"""The one error hierarchy of statewright.

Every error says what was wrong, with the offending value, and what is allowed.
Control-flow signals (``Poll``) are not errors and live in ``statewright.outcomes``.
"""

from __future__ import annotations

from collections.abc import Iterable


def _choices(values: Iterable[str]) -> str:
    listed = sorted(values)
    return ", ".join(repr(v) for v in listed) if listed else "(none)"


class StatewrightError(Exception):
    """Root of every error statewright raises on purpose."""


class ConfigurationError(StatewrightError):
    """A setting (usually an environment variable) has a value we cannot use."""


class DefinitionError(StatewrightError):
    """A workflow definition is inconsistent; raised when the class is declared."""


class UnknownWorkflowError(StatewrightError):
    """A workflow name that no registered definition has."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown workflow {name!r}; registered workflows: {_choices(known)}")
        self.name = name


class UnknownStateError(StatewrightError):
    """A state that a workflow (no longer) has a step for."""


class UnknownTaskError(StatewrightError):
    """A task name that neither a workflow nor an imported instrumented task has."""


class RunNotFoundError(StatewrightError):
    """No run has this id."""

    def __init__(self, run_id: object) -> None:
        shown = repr(run_id) if isinstance(run_id, str) else repr(str(run_id))
        super().__init__(f"no run with id {shown}")
        self.run_id = run_id


class AmbiguousRunIdError(RunNotFoundError):
    """A run id prefix that more than one run's id starts with."""

    def __init__(self, prefix: str, matches: Iterable[str], *, more: bool = False) -> None:
        listed = ", ".join(matches) + (", ..." if more else "")
        StatewrightError.__init__(
            self, f"run id prefix {prefix!r} is ambiguous; it matches: {listed}; give more of it"
        )
        self.run_id = prefix


class InvalidParamsError(StatewrightError):
    """Run parameters, context or signal data that cannot be stored as JSON."""


class IllegalOperationError(StatewrightError):
    """An operation that the run's current status or state does not allow."""


class IdempotencyConflictError(IllegalOperationError):
    """An idempotency key reused with different parameters."""


class ScheduleError(StatewrightError):
    """A schedule that cannot work (its cron, timezone or policy), or no schedule by that name."""


class SiloLimitError(StatewrightError):
    """A task called or run in a silo mode it does not allow."""


class PermanentError(StatewrightError):
    """Raised by a handler to fail its run at once, without retrying.

    ``reason`` is shown to people; the exception itself is kept as the detail.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


__all__ = [
    "AmbiguousRunIdError",
    "ConfigurationError",
    "DefinitionError",
    "IdempotencyConflictError",
    "IllegalOperationError",
    "InvalidParamsError",
    "PermanentError",
    "RunNotFoundError",
    "ScheduleError",
    "SiloLimitError",
    "StatewrightError",
    "UnknownStateError",
    "UnknownTaskError",
    "UnknownWorkflowError",
]


class SignalTooLateError(IllegalOperationError):
    """A signal for a waiting state that the run already left (its timeout, or another
    signal, won the race); the signal is dropped and counted, and nothing is written."""
