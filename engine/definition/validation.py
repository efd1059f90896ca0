"""Checking a declaration: every problem is collected, then raised as one error.

A person fixing a workflow sees all of its mistakes at once, each a sentence naming
the offending value and what is allowed, instead of one per attempt.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from statewright.definition.graph import Edge, Graph
from statewright.errors import DefinitionError
from statewright.retry import RetryPolicy

if TYPE_CHECKING:
    from statewright.definition.specs import StepSpec, TaskSpec

#: Triggers the engine itself writes into history; a workflow may not declare them.
ENGINE_EVENTS = frozenset(
    {
        "start",
        "retry",
        "poll",
        "pause",
        "resume",
        "cancel",
        "abort",
        "fail",
        "redrive",
        "redispatch",
        "deadline",
    }
)
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
NAME_RULE = "use lowercase letters, digits and _"


class Problems:
    """The problems found in one declaration, raised together by ``raise_if_any``."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.found: list[str] = []

    def add(self, message: str) -> None:
        self.found.append(message)

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Record a ``DefinitionError`` raised in the block (a check that stops at its
        first problem) instead of letting it end the declaration."""
        try:
            yield
        except DefinitionError as error:
            self.found.extend(error.problems)

    def raise_if_any(self) -> None:
        """One ``DefinitionError`` naming every problem found, if there is any."""
        if len(self.found) == 1:
            raise DefinitionError(self.found[0])
        if self.found:
            listed = "\n".join(f"  - {problem}" for problem in self.found)
            raise DefinitionError(
                f"{self.subject} has {len(self.found)} problems:\n{listed}", self.found
            )


def check_options(
    where: str,
    *,
    retry: object = None,
    time_limit: float | None = None,
    queue: str | None = None,
    poll_limit: int | None = None,
    poll_deadline: timedelta | None = None,
) -> None:
    """Refuse option values that cannot work, naming the value and what is allowed."""
    problems = Problems(where)
    for problem in option_problems(
        where,
        retry=retry,
        time_limit=time_limit,
        queue=queue,
        poll_limit=poll_limit,
        poll_deadline=poll_deadline,
    ):
        problems.add(problem)
    problems.raise_if_any()


def check_step_options(where: str, spec: StepSpec) -> None:
    """Refuse a ``@step``'s option values that cannot work, naming each one."""
    check_options(
        where,
        retry=spec.retry,
        time_limit=spec.time_limit,
        queue=spec.queue,
        poll_limit=spec.poll_limit,
        poll_deadline=spec.poll_deadline,
    )


def option_problems(
    where: str,
    *,
    retry: object = None,
    time_limit: object = None,
    queue: object = None,
    poll_limit: object = None,
    poll_deadline: object = None,
) -> list[str]:
    """What is wrong with these step or workflow options (nothing: an empty list)."""
    found: list[str] = []
    if retry is not None and not isinstance(retry, RetryPolicy):
        found.append(f"{where}: retry must be a RetryPolicy; got {retry!r}")
    if time_limit is not None and not (isinstance(time_limit, int | float) and time_limit > 0):
        found.append(
            f"{where}: time_limit must be a positive number of seconds; got {time_limit!r}"
        )
    if queue is not None and not (isinstance(queue, str) and queue.strip()):
        found.append(f"{where}: queue must be a non-empty name; got {queue!r}")
    if poll_limit is not None and not (isinstance(poll_limit, int) and poll_limit >= 1):
        found.append(
            f"{where}: poll_limit must be a whole number of at least 1; got {poll_limit!r}"
        )
    if poll_deadline is not None and not (
        isinstance(poll_deadline, timedelta) and poll_deadline > timedelta(0)
    ):
        found.append(
            f"{where}: poll_deadline must be positive (seconds or a "
            f"timedelta); got {poll_deadline!r}"
        )
    return found


def check_not_async(kind: str, fn: Callable[..., Any]) -> None:
    """Refuse an ``async def`` handler: the engine calls handlers synchronously, so a
    coroutine would be returned unawaited and fail every attempt at run time."""
    function = getattr(fn, "__func__", fn)
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise DefinitionError(
            f"{kind} handler {function.__qualname__} is declared `async def`; handlers run "
            "synchronously on a worker, so declare it with plain `def` (run any async code "
            "inside it, for example with asyncio.run)"
        )


def parse_edges(name: str, table: object, problems: Problems) -> tuple[Edge, ...]:
    """The declared transitions as edges; rows that are not valid are reported, skipped."""
    if not isinstance(table, list | tuple):
        problems.add(
            f"workflow {name!r}: transitions must be a list of (trigger, source, dest); "
            f"got {table!r}"
        )
        return ()
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for row in table:
        if not (
            isinstance(row, list | tuple)
            and len(row) == 3
            and all(isinstance(part, str) for part in row)
        ):
            problems.add(
                f"workflow {name!r}: transition {row!r} must be (trigger, source, dest) strings"
            )
            continue
        edge = Edge(*row)
        _check_edge(name, edge, seen, problems)
        seen.add((edge.trigger, edge.source))
        edges.append(edge)  # kept even if wrong, so its states raise no problems of their own
    return tuple(edges)


def _check_edge(name: str, edge: Edge, seen: set[tuple[str, str]], problems: Problems) -> None:
    if edge.trigger in ENGINE_EVENTS:
        problems.add(
            f"workflow {name!r}: trigger {edge.trigger!r} is reserved by the engine; "
            f"reserved: {', '.join(sorted(ENGINE_EVENTS))}"
        )
    elif not NAME.match(edge.trigger):
        problems.add(
            f"workflow {name!r}: trigger name {edge.trigger!r} is not allowed; {NAME_RULE}"
        )
    if (edge.trigger, edge.source) in seen:
        problems.add(
            f"workflow {name!r}: trigger {edge.trigger!r} is declared twice from "
            f"{edge.source!r}; a trigger must lead to one state"
        )


def find_initial(name: str, steps: Mapping[str, StepSpec], problems: Problems) -> str | None:
    """The one state marked initial; ``None`` (with a problem) if there is not exactly one."""
    initial = [s.state for s in steps.values() if s.initial]
    if not initial:
        problems.add(
            f"workflow {name!r} has no initial state; mark one handler @step(initial=True)"
        )
        return None
    if len(initial) > 1:
        problems.add(
            f"workflow {name!r} has {len(initial)} initial states "
            f"({', '.join(map(repr, sorted(initial)))}); exactly one is allowed"
        )
        return None
    return initial[0]


def check_states(
    name: str,
    steps: Mapping[str, StepSpec],
    terminal: frozenset[str],
    graph: Graph,
    problems: Problems,
) -> None:
    """Every state in a move has a handler or is terminal; terminal states have no
    handler and no move out; every other state has a move out."""
    for state in sorted(terminal & set(steps)):
        problems.add(
            f"workflow {name!r}: terminal state {state!r} has a handler; terminal states have none"
        )
    known = set(steps) | terminal
    unknown: set[str] = set()
    for edge in graph.edges:
        for state in (edge.source, edge.dest):
            if state not in known and state not in unknown:
                unknown.add(state)
                problems.add(
                    f"workflow {name!r}: state {state!r} (in transition {edge.trigger!r}) has "
                    f"no handler and is not terminal; states with handlers: "
                    f"{', '.join(sorted(steps)) or '(none)'}"
                )
        if edge.source in terminal:
            problems.add(
                f"workflow {name!r}: terminal state {edge.source!r} has a transition out "
                f"({edge.trigger!r}); terminal states end a run"
            )
    for state in sorted(set(steps) - graph.sources()):
        problems.add(
            f"workflow {name!r}: state {state!r} is not terminal and has no transition out; "
            "declare a transition from it or make it terminal"
        )


def check_reachable(
    name: str,
    initial: str,
    states: set[str],
    terminal: frozenset[str],
    graph: Graph,
    problems: Problems,
) -> None:
    """Every state can be reached from the initial one, and so can a terminal state."""
    reachable = {initial, *graph.ahead_of(initial)}
    unreachable = sorted(states - reachable)
    if unreachable:
        problems.add(
            f"workflow {name!r}: state(s) {', '.join(map(repr, unreachable))} cannot be "
            f"reached from the initial state {initial!r}"
        )
    if not terminal & reachable:
        problems.add(f"workflow {name!r}: no terminal state is reachable")


def check_returned_triggers(
    name: str, steps: Mapping[str, StepSpec], graph: Graph, problems: Problems
) -> None:
    """Triggers named in a handler's ``Literal[...]`` return type must be declared."""
    for spec in steps.values():
        declared = graph.triggers_from(spec.state)
        for trigger in sorted(_literal_returns(spec.handler) - set(declared)):
            problems.add(
                f"workflow {name!r}: handler of {spec.state!r} may return trigger {trigger!r}, "
                f"which is not declared from {spec.state!r}; declared: "
                f"{', '.join(map(repr, declared)) or '(none)'}"
            )


def check_tasks(
    name: str,
    tasks: Mapping[str, TaskSpec],
    states: set[str],
    failure_task: object,
    problems: Problems,
) -> None:
    """Task names differ from state names; the failure task is one of the tasks."""
    for clash in sorted(set(tasks) & states):
        problems.add(
            f"workflow {name!r}: task {clash!r} has the name of a state; task names must differ"
        )
    if failure_task is not None and failure_task not in tasks:
        problems.add(
            f"workflow {name!r}: failure_task {failure_task!r} is not one of its tasks; "
            f"tasks: {', '.join(sorted(tasks)) or '(none)'}"
        )


def check_name(kind: str, name: object, problems: Problems) -> str:
    """``name`` if it is allowed; otherwise a problem, and a printable stand-in."""
    if isinstance(name, str) and NAME.match(name):
        return name
    problems.add(f"{kind} name {name!r} is not allowed; {NAME_RULE}")
    return str(name)


def _literal_returns(handler: Callable[..., Any]) -> set[str]:
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # an annotation we cannot resolve says nothing about triggers
        return set()
    found: set[str] = set()
    pending: list[Any] = [hints.get("return")]
    while pending:
        hint = pending.pop()
        if typing.get_origin(hint) is typing.Literal:
            found.update(a for a in typing.get_args(hint) if isinstance(a, str))
        else:
            pending.extend(typing.get_args(hint))
    return found
