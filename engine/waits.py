"""Declaring waits and deadlines: waiting states, their signals and timeouts, and a
run's deadline. Validated when a workflow is declared; ``statewright.timers`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from statewright.errors import DefinitionError

if TYPE_CHECKING:
    from statewright.definition import Edge, StepSpec

#: A waiting state's signal handler: takes a ``SignalContext``, returns nothing.
SignalHandler = Callable[..., None]


@dataclass(frozen=True, slots=True, init=False)
class Wait:
    """A waiting state: no step runs in it. It is left by one of ``signals`` (triggers
    declared from it, fired by ``Engine.signal``) or, once ``timeout`` has passed since
    it was entered, by the trigger ``on_timeout``."""

    signals: tuple[str, ...]
    timeout: timedelta | None
    on_timeout: str | None

    def __init__(
        self,
        *,
        signals: Iterable[str],
        timeout: timedelta | float | None = None,
        on_timeout: str | None = None,
    ) -> None:
        names = (signals,) if isinstance(signals, str) else tuple(signals)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise DefinitionError(
                f"Wait(signals=...) must name one or more triggers; got {signals!r}"
            )
        span = _span(timeout)
        if timeout is not None and span is None:
            raise DefinitionError(
                f"Wait(timeout=...) must be positive (seconds or a timedelta); got {timeout!r}"
            )
        if (span is None) != (on_timeout is None):
            raise DefinitionError(
                "Wait needs both timeout= and on_timeout= (the trigger taken when it passes) "
                f"or neither; got timeout={timeout!r}, on_timeout={on_timeout!r}"
            )
        object.__setattr__(self, "signals", names)
        object.__setattr__(self, "timeout", span)
        object.__setattr__(self, "on_timeout", on_timeout)

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger that leaves the wait: its signals, then its timeout trigger."""
        if self.on_timeout is None or self.on_timeout in self.signals:
            return self.signals
        return (*self.signals, self.on_timeout)


@dataclass(frozen=True, slots=True)
class RunDeadline:
    """How long a run may take in all; past it the run takes ``trigger`` where that is
    declared from its state, and fails with ``reason`` anywhere else."""

    #: ``None``: runs have a deadline only if started with one.
    after: timedelta | None
    trigger: str | None
    reason: str


def on_signal(state: str) -> Callable[[SignalHandler], Any]:
    """Mark a method of a ``Workflow`` as the signal handler of waiting state ``state``.

    It takes a ``SignalContext`` (the signal's trigger and data, the run's params and
    context, a session) and returns nothing; its domain writes commit in the same
    transaction as the move the signal makes. If it raises, nothing is written and the
    signal is refused with that error.
    """

    def mark(fn: SignalHandler) -> Any:
        fn.__statewright_signal__ = state  # type: ignore[attr-defined]
        return fn

    return mark


def collect_waits(
    name: str,
    declared_waits: object,
    members: Sequence[Any],
    steps: Mapping[str, StepSpec],
    edges: Sequence[Edge],
) -> dict[str, tuple[Wait, SignalHandler | None]]:
    """The workflow's waits with their signal handlers, checked against its edges."""
    waits = _declared_waits(name, declared_waits)
    handlers = _signal_handlers(name, members, waits)
    for state, wait in waits.items():
        if state in steps:
            raise DefinitionError(
                f"workflow {name!r}: waiting state {state!r} also has a @step handler; a "
                "waiting state runs no step (give it an @on_signal handler instead)"
            )
        declared = sorted(e.trigger for e in edges if e.source == state)
        for trigger in wait.triggers:
            if trigger not in declared:
                raise DefinitionError(
                    f"workflow {name!r}: waiting state {state!r} waits for trigger "
                    f"{trigger!r}, which is not declared from it; declared: "
                    f"{', '.join(map(repr, declared)) or '(none)'}"
                )
    return {state: (wait, handlers.get(state)) for state, wait in waits.items()}


def _declared_waits(name: str, declared: object) -> dict[str, Wait]:
    if not isinstance(declared, Mapping) or not all(
        isinstance(state, str) and isinstance(wait, Wait) for state, wait in declared.items()
    ):
        raise DefinitionError(
            f"workflow {name!r}: waits must map state names to Wait(...); got {declared!r}"
        )
    return dict(declared)


def _signal_handlers(
    name: str, members: Sequence[Any], waits: Mapping[str, Wait]
) -> dict[str, SignalHandler]:
    handlers: dict[str, SignalHandler] = {}
    for value in members:
        state = getattr(value, "__statewright_signal__", None)
        if state is None:
            continue
        if state not in waits:
            raise DefinitionError(
                f"workflow {name!r}: @on_signal({state!r}) names no waiting state; waiting "
                f"states: {', '.join(map(repr, sorted(waits))) or '(none)'}"
            )
        if state in handlers:
            raise DefinitionError(f"workflow {name!r}: waiting state {state!r} has two handlers")
        handlers[state] = value
    return handlers


def run_deadline(
    name: str,
    after: timedelta | float | None,
    trigger: str | None,
    reason: str | None,
    edges: Sequence[Edge],
) -> RunDeadline | None:
    """The workflow's declared deadline, checked; ``None`` if it declares none."""
    span = _span(after)
    if after is not None and span is None:
        raise DefinitionError(
            f"workflow {name!r}: deadline must be positive (seconds or a timedelta); got {after!r}"
        )
    if trigger is not None and trigger not in {e.trigger for e in edges}:
        raise DefinitionError(
            f"workflow {name!r}: on_deadline {trigger!r} is not a declared trigger; declare "
            "it from the states a run should leave that way when its deadline passes"
        )
    if span is None and trigger is None and reason is None:
        return None
    text = reason or f"The {name} run did not finish before its deadline"
    return RunDeadline(span, trigger, text)


def _span(value: object) -> timedelta | None:
    """A positive span from seconds or a timedelta; ``None`` if absent or not positive."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = timedelta(seconds=value)
    if isinstance(value, timedelta) and value > timedelta(0):
        return value
    return None
