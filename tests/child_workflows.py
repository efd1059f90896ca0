"""Workflows with child runs and Maps that the tests run (also imported by real workers).

``parent`` starts ``params["children"]`` children of ``child`` and joins them;
``map_tasks`` maps over ``params["items"]`` numbers as task items; ``map_runs`` maps
over them as ``child`` runs. Items whose number is a multiple of ``params["fail_every"]``
fail; each item's effect is counted in ``test_effects`` in its own transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Literal

from statewright import PermanentError, Poll, StepContext, Workflow, step
from statewright.fanout import ItemContext, PageContext
from statewright.joins import Map
from statewright.waits import Wait
from tests.sample_workflows import effect_counts, record_effect


class Child(Workflow):
    """Works once, or waits for a ``go`` signal first (``params["hold"]``), or fails."""

    name = "child"
    transitions = [("ready", "working", "done"), ("held", "working", "holding")]
    transitions += [("go", "holding", "done")]
    terminal = ["done"]
    waits = {"holding": Wait(signals=["go"])}

    @step(initial=True)
    def working(self, ctx: StepContext) -> Literal["ready", "held"]:
        if ctx.params.get("hold"):
            return "held"
        if ctx.params.get("fail"):
            raise PermanentError(f"child {ctx.params.get('n')} cannot work")
        record_effect(ctx.session, ctx.run_id, "working")
        ctx.context["doubled"] = 2 * int(ctx.params.get("n", 0))
        return "ready"


class Parent(Workflow):
    """Starts children, then joins them and keeps what each one did."""

    name = "parent"
    transitions = [("spawned", "spawning", "joining"), ("joined", "joining", "done")]
    terminal = ["done"]
    joins = ["joining"]
    child_policy = "cancel"

    @step(initial=True)
    def spawning(self, ctx: StepContext) -> Literal["spawned"] | Poll:
        for n in range(int(ctx.params.get("children", 2))):
            params = {
                "n": n,
                "hold": n in ctx.params.get("hold", []),
                "fail": n == ctx.params.get("fail"),
            }
            ctx.start_child("child", params, key=f"c{n}")
        if ctx.attempt <= int(ctx.params.get("crash_attempts", 0)):
            raise ConnectionError(f"spawning attempt {ctx.attempt} lost its connection")
        record_effect(ctx.session, ctx.run_id, "spawning")
        if ctx.polls < int(ctx.params.get("polls", 0)):
            return Poll(1)
        return "spawned"

    @step()
    def joining(self, ctx: StepContext) -> Literal["joined"]:
        ctx.context["children"] = {
            c.key: {
                "status": c.status,
                "doubled": (c.result or {}).get("doubled"),
                "reason": c.reason,
            }
            for c in ctx.children()
        }
        return "joined"


class AbortingParent(Parent):
    name = "aborting_parent"
    child_policy = "abort"


class LeavingParent(Parent):
    name = "leaving_parent"
    child_policy = "leave"


def numbers(params: dict[str, Any], offset: int, limit: int) -> list[int]:
    total = int(params["items"])
    return list(range(offset, min(total, offset + limit)))


class MapTasks(Workflow):
    """Maps over ``items`` numbers as task items, at most ``concurrency`` at a time."""

    name = "map_tasks"
    transitions = [("prepared", "preparing", "mapping"), ("mapped", "mapping", "done")]
    transitions += [("too_many_failed", "mapping", "rejected")]
    terminal = ["done", "rejected"]
    maps = {
        "mapping": Map(
            items="page",
            each="one",
            concurrency=8,
            page_size=5,
            tolerate="10%",
            on_done="mapped",
            on_failed="too_many_failed",
            attempts=2,
        )
    }

    @step(initial=True)
    def preparing(self, ctx: StepContext) -> Literal["prepared"]:
        return "prepared"

    def page(self, ctx: PageContext, offset: int, limit: int) -> Sequence[int]:
        asked = ctx.session.info.setdefault("statewright.test.pages", [])
        asked.append((offset, limit))
        return numbers(ctx.params, offset, limit)

    def one(self, ctx: ItemContext) -> dict[str, int]:
        every = int(ctx.params.get("fail_every", 0))
        if every and ctx.item % every == 0:
            raise ValueError(f"item {ctx.item} is not allowed")
        if ctx.params.get("effects", True):
            record_effect(ctx.session, ctx.run_id, f"item-{ctx.item}")
        sleep = float(ctx.params.get("sleep", 0))
        if sleep:
            time.sleep(sleep)
        return {"square": ctx.item * ctx.item, "pid": os.getpid()}


class StrictMap(MapTasks):
    """The same Map with no tolerance and no ``on_failed``: a failed item fails the run."""

    name = "strict_map"
    transitions = [("prepared", "preparing", "mapping"), ("mapped", "mapping", "done")]
    terminal = ["done"]
    maps = {"mapping": Map(items="page", each="one", concurrency=4, page_size=10, on_done="mapped")}


#: ``(offset, limit)`` of every page ``wide_map`` was asked for, in this process.
WIDE_PAGES: list[tuple[int, int]] = []


class WideMap(MapTasks):
    """Many items, a wide bound and large pages (the Map scale test)."""

    name = "wide_map"
    maps = {
        "mapping": Map(
            items="page",
            each="one",
            concurrency=200,
            page_size=100,
            tolerate=0,
            on_done="mapped",
            on_failed="too_many_failed",
        )
    }

    def page(self, ctx: PageContext, offset: int, limit: int) -> Sequence[int]:
        WIDE_PAGES.append((offset, limit))
        return numbers(ctx.params, offset, limit)

    def one(self, ctx: ItemContext) -> dict[str, int] | None:
        if not ctx.params.get("effects", True):
            return None
        record_effect(ctx.session, ctx.run_id, f"item-{ctx.item}")
        return {"pid": os.getpid()}


#: Runs whose ``flaky_source`` already failed once (in this process).
BROKEN_ONCE: set[str] = set()


class FlakySource(MapTasks):
    """Its source fails on the page with ``params["break_at"]``: once, or every time with
    ``always``."""

    name = "flaky_source"

    def page(self, ctx: PageContext, offset: int, limit: int) -> Sequence[int]:
        breaks = ctx.params.get("always") or ctx.run_id not in BROKEN_ONCE
        if offset <= ctx.params["break_at"] < offset + limit and breaks:
            BROKEN_ONCE.add(ctx.run_id)
            raise ConnectionResetError(f"the source went away at {offset}")
        return numbers(ctx.params, offset, limit)


class MapRuns(Workflow):
    """Maps over ``items`` numbers as ``child`` runs, at most 3 at a time."""

    name = "map_runs"
    transitions = [("prepared", "preparing", "mapping"), ("mapped", "mapping", "done")]
    terminal = ["done"]
    maps = {
        "mapping": Map(
            items="page",
            workflow="child",
            params="child_params",
            concurrency=3,
            page_size=2,
            tolerate=1,
            on_done="mapped",
        )
    }

    @step(initial=True)
    def preparing(self, ctx: StepContext) -> Literal["prepared"]:
        return "prepared"

    def page(self, ctx: PageContext, offset: int, limit: int) -> Sequence[dict[str, Any]]:
        fail, hold = ctx.params.get("fail", []), ctx.params.get("hold", [])
        return [
            {"n": n, "fail": n in fail, "hold": n in hold}
            for n in numbers(ctx.params, offset, limit)
        ]

    def child_params(self, item: dict[str, Any]) -> dict[str, Any]:
        return item


def fixed(session: Any, run_id: str) -> bool:
    """Whether the cause of ``run_id``'s broken items was fixed (``fix`` was called)."""
    return "fixed" in effect_counts(session, run_id)


class FixableMap(MapTasks):
    """Task items; those in ``params["broken"]`` fail until the run's cause is fixed.
    No tolerance and no ``on_failed``: a failed item fails the run."""

    name = "fixable_map"
    transitions = [("prepared", "preparing", "mapping"), ("mapped", "mapping", "done")]
    terminal = ["done"]
    maps = {
        "mapping": Map(
            items="page", each="one", concurrency=2, page_size=2, attempts=2, on_done="mapped"
        )
    }

    def one(self, ctx: ItemContext) -> dict[str, int]:
        if ctx.item in ctx.params.get("broken", []) and not fixed(ctx.session, ctx.run_id):
            raise ValueError(f"item {ctx.item} is broken")
        record_effect(ctx.session, ctx.run_id, f"item-{ctx.item}")
        return {"attempt": ctx.attempt}


class FixableChild(Workflow):
    """Prepares, then works: its work fails while it is ``broken`` and its parent's cause
    is not fixed. Each step counts its effect under the parent run."""

    name = "fixable_child"
    transitions = [("prepared", "preparing", "working"), ("worked", "working", "done")]
    terminal = ["done"]

    @step(initial=True)
    def preparing(self, ctx: StepContext) -> Literal["prepared"]:
        record_effect(ctx.session, ctx.params["parent"], f"prepared-{ctx.params['n']}")
        return "prepared"

    @step()
    def working(self, ctx: StepContext) -> Literal["worked"]:
        if ctx.params["broken"] and not fixed(ctx.session, ctx.params["parent"]):
            raise PermanentError(f"child {ctx.params['n']} is broken")
        record_effect(ctx.session, ctx.params["parent"], f"item-{ctx.params['n']}")
        return "worked"


class FixableRuns(Workflow):
    """Maps over ``items`` numbers as ``fixable_child`` runs, 2 at a time, no tolerance."""

    name = "fixable_runs"
    transitions = [("prepared", "preparing", "mapping"), ("mapped", "mapping", "done")]
    terminal = ["done"]
    maps = {
        "mapping": Map(
            items="page", workflow="fixable_child", concurrency=2, page_size=2, on_done="mapped"
        )
    }

    @step(initial=True)
    def preparing(self, ctx: StepContext) -> Literal["prepared"]:
        return "prepared"

    def page(self, ctx: PageContext, offset: int, limit: int) -> Sequence[dict[str, Any]]:
        broken = ctx.params.get("broken", [])
        return [
            {"n": n, "parent": ctx.run_id, "broken": n in broken}
            for n in numbers(ctx.params, offset, limit)
        ]


class TimedMap(MapTasks):
    """Task items with a 2-second time limit; items in ``params["slow"]`` sleep
    ``params["sleep"]`` seconds on their first attempt."""

    name = "timed_map"
    maps = {
        "mapping": Map(
            items="page",
            each="one",
            concurrency=4,
            page_size=4,
            attempts=2,
            on_done="mapped",
            on_failed="too_many_failed",
            time_limit=2,
        )
    }

    def one(self, ctx: ItemContext) -> dict[str, int]:
        if ctx.item in ctx.params.get("slow", []) and ctx.attempt == 1:
            time.sleep(float(ctx.params["sleep"]))
        record_effect(ctx.session, ctx.run_id, f"item-{ctx.item}")
        return {"attempt": ctx.attempt, "pid": os.getpid()}


WORKFLOWS: list[Any] = [
    Child,
    Parent,
    AbortingParent,
    LeavingParent,
    MapTasks,
    StrictMap,
    WideMap,
    FlakySource,
    MapRuns,
    FixableMap,
    FixableChild,
    FixableRuns,
    TimedMap,
]
