"""Declaring joins and Maps: states that wait for child runs or for a Map's items.

A *join state* has a ``@step`` handler that runs only once every child run its
run's earlier steps started has finished; the handler reads them with
``ctx.children()``. A *Map state* has no handler of its own: entering it fans out
over the items its source gives, page by page, at most ``concurrency`` at a time, as
child runs of ``workflow`` or as calls of ``each``; when the last item finishes, the
state's step (the engine's) takes ``on_done``, or ``on_failed`` when more items
failed than ``tolerate`` allows. Both are validated when a workflow is declared;
``statewright.children`` and ``statewright.fanout`` run them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statewright.errors import DefinitionError

if TYPE_CHECKING:
    from statewright.context import StepContext
    from statewright.definition import Edge, StepSpec

#: What a parent's cancel or abort does to its children still running.
CHILD_POLICIES = ("cancel", "abort", "leave")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How many failed items a Map accepts: a count, or a fraction of its items."""

    count: int | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, value: object) -> Tolerance:
        """``0``, ``5`` (items) or ``"2.5%"`` (of the items); anything else is refused."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(count=value)
        match = _PERCENT.match(value) if isinstance(value, str) else None
        if match is not None and float(match.group(1)) <= 100:
            return cls(fraction=float(match.group(1)) / 100)
        raise DefinitionError(
            f"Map(tolerate=...) takes a whole number of failed items (0 or more) or a "
            f"percentage such as '5%'; got {value!r}"
        )

    def allows(self, failed: int, total: int) -> bool:
        """Whether ``failed`` of ``total`` items failing is within the tolerance."""
        if self.count is not None:
            return failed <= self.count
        assert self.fraction is not None
        return failed <= math.floor(self.fraction * total + 1e-9)

    def describe(self) -> str:
        if self.count is not None:
            return f"at most {self.count} failed item(s)"
        assert self.fraction is not None
        return f"at most {self.fraction * 100:g}% of the items failed"


@dataclass(frozen=True, slots=True, init=False)
class Map:
    """A state that fans out over items and moves once when the last one finishes.

    ``items`` names a method ``(ctx: PageContext, offset, limit) -> Sequence`` giving
    the items at positions ``offset`` to ``offset + limit`` (fewer at the end; the
    same items for the same positions every time it is asked). Each item runs either
    as a child run of ``workflow`` (params from the method named ``params``, else the
    item itself when it is a JSON object, else ``{"item": item}``), or as the method
    named ``each``, ``(ctx: ItemContext) -> JSON result or None``, whose writes commit
    with the item's completion. An ``each`` item that raises is tried again, up to
    ``attempts`` times in all, then counts as failed with its error as the reason.
    ``time_limit`` (seconds) bounds each attempt of an ``each`` item: its soft limit
    raises in the item (a failed attempt), its hard limit a few seconds later ends the
    worker process, and a worker lost mid-item has the item sent again once that limit
    and the lease grace have passed; without it, the engine's default time limit
    applies. A child run's item has no time limit of its own (its steps have theirs).

    When the run fails in the Map state (past the tolerance, say) and is redriven, its
    failed items, those cancelled with it included, run again under the same bound,
    each with a fresh attempt budget; items that succeeded are kept.
    """

    items: str
    each: str | None
    workflow: str | None
    params: str | None
    concurrency: int
    page_size: int
    tolerance: Tolerance
    on_done: str
    on_failed: str | None
    attempts: int
    queue: str | None
    reason: str | None
    time_limit: float | None

    def __init__(
        self,
        *,
        items: str,
        on_done: str,
        each: str | None = None,
        workflow: str | None = None,
        params: str | None = None,
        concurrency: int = 10,
        page_size: int = 500,
        tolerate: int | str = 0,
        on_failed: str | None = None,
        attempts: int = 3,
        queue: str | None = None,
        reason: str | None = None,
        time_limit: float | None = None,
    ) -> None:
        if (each is None) == (workflow is None):
            raise DefinitionError(
                "Map needs exactly one of each= (a method run per item) and workflow= "
                f"(a child run per item); got each={each!r}, workflow={workflow!r}"
            )
        for label, number in (("concurrency", concurrency), ("page_size", page_size)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise DefinitionError(
                    f"Map({label}=...) must be a whole number of at least 1; got {number!r}"
                )
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise DefinitionError(
                f"Map(attempts=...) must be a whole number of at least 1; got {attempts!r}"
            )
        values = {
            "items": items,
            "each": each,
            "workflow": workflow,
            "params": params,
            "concurrency": concurrency,
            "page_size": page_size,
            "tolerance": Tolerance.parse(tolerate),
            "on_done": on_done,
            "on_failed": on_failed,
            "attempts": attempts,
            "queue": queue,
            "reason": reason,
            "time_limit": time_limit,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def triggers(self) -> tuple[str, ...]:
        return (self.on_done,) if self.on_failed is None else (self.on_done, self.on_failed)


def check_child_policy(name: str, policy: object) -> str:
    if policy not in CHILD_POLICIES:
        raise DefinitionError(
            f"workflow {name!r}: child_policy {policy!r} is not allowed; allowed: "
            f"{', '.join(map(repr, CHILD_POLICIES))}"
        )
    return str(policy)


def collect_joins(
    name: str, declared: object, steps: Mapping[str, StepSpec], edges: Sequence[Edge]
) -> frozenset[str]:
    """The workflow's join states, each checked to have a step; one ``DefinitionError``
    names every problem."""
    if isinstance(declared, str) or not isinstance(declared, Iterable):
        raise DefinitionError(f"workflow {name!r}: joins must list state names; got {declared!r}")
    joins = frozenset(declared)
    found: list[str] = []
    for state in sorted(joins):
        if state not in steps or steps[state].wait is not None:
            found.append(
                f"workflow {name!r}: join state {state!r} needs a @step handler (it runs once "
                "the run's children have finished); states with handlers: "
                f"{', '.join(sorted(s for s in steps if steps[s].wait is None)) or '(none)'}"
            )
    _raise_all(found)
    return joins


def collect_maps(
    name: str,
    declared: object,
    members: Mapping[str, Any],
    steps: Mapping[str, StepSpec],
    edges: Sequence[Edge],
) -> dict[str, Map]:
    """The workflow's Map states, checked against its edges and methods; one
    ``DefinitionError`` names every problem."""
    if not isinstance(declared, Mapping) or not all(
        isinstance(state, str) and isinstance(spec, Map) for state, spec in declared.items()
    ):
        raise DefinitionError(
            f"workflow {name!r}: maps must map state names to Map(...); got {declared!r}"
        )
    found: list[str] = []
    for state, spec in declared.items():
        if state in steps:
            found.append(
                f"workflow {name!r}: Map state {state!r} also has a @step handler or a wait; "
                "a Map state's step is the engine's (it takes on_done or on_failed)"
            )
        out = sorted(e.trigger for e in edges if e.source == state)
        for trigger in spec.triggers:
            if trigger not in out:
                found.append(
                    f"workflow {name!r}: Map state {state!r} takes trigger {trigger!r}, which "
                    f"is not declared from it; declared: {', '.join(map(repr, out)) or '(none)'}"
                )
        for label in ("items", "each", "params"):
            method = getattr(spec, label)
            if method is not None and not callable(members.get(method)):
                found.append(
                    f"workflow {name!r}: Map state {state!r} names {label}={method!r}, which "
                    "is not a method of the workflow"
                )
        found.extend(_time_limit_problems(name, state, spec))
    _raise_all(found)
    return dict(declared)


def _time_limit_problems(name: str, state: str, spec: Map) -> list[str]:
    """What is wrong with a Map's ``time_limit``: it must be a positive number of
    seconds, and only task items (``each=``) have one."""
    limit = spec.time_limit
    if limit is None:
        return []
    where = f"workflow {name!r}: Map state {state!r}"
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit < math.inf:
        return [f"{where} has time_limit={limit!r}; it must be a positive number of seconds"]
    if spec.workflow is not None:
        return [
            f"{where} has time_limit={limit!r}, but its items are child runs of "
            f"{spec.workflow!r}: a child run's steps have their own time limits (set them "
            "on its workflow); a Map's time_limit bounds each call of each= only"
        ]
    return []


def _raise_all(found: Sequence[str]) -> None:
    """One ``DefinitionError`` naming every problem in ``found``, if there is any."""
    if found:
        raise DefinitionError("; ".join(found), found)


def map_step(workflow: Any, ctx: StepContext) -> str:
    """The step of every Map state: runs once its last item has finished, and takes
    ``on_done``, or ``on_failed`` (or fails the run) past the tolerance."""
    from statewright.fanout import map_outcome  # the runtime needs the engine's modules

    spec = type(workflow).definition.steps[ctx.state].map
    assert spec is not None
    return map_outcome(ctx, spec)
