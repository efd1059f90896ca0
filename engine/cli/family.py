"""Children and Maps on the command line: ``runs show`` lists a run's parent, children
and Maps; ``runs failed-items`` lists a Map's failed items with their reasons (and says
when a redrive would run them again)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from statewright.cli.common import JsonFlag, RunId, engine_from_env, out, print_json, status_markup
from statewright.errors import StatewrightError

if TYPE_CHECKING:
    from statewright.api import Engine

#: Children listed by ``runs show`` (``--json`` too); a Map's items are counted, not listed.
SHOWN_CHILDREN = 50


def family_json(engine: Engine, run_id: str) -> dict[str, Any]:
    """The run's parent, children and Maps, as ``runs show --json`` adds them."""
    parent = engine.parent(run_id)
    return {
        "parent": None
        if parent is None
        else {"run_id": parent.run_id, "state": parent.state, "key": parent.key},
        "children": [c.to_json() for c in engine.children(run_id, limit=SHOWN_CHILDREN)],
        "maps": [
            {**m.to_json(), "item_time_limit": _item_time_limit(engine, run_id, m.state)}
            for m in engine.maps(run_id)
        ],
    }


def _item_time_limit(engine: Engine, run_id: str, state: str) -> float | None:
    """The time limit the Map of ``state`` declares for each of its task items (``None``:
    the engine's default, or a Map of child runs, whose steps have their own)."""
    try:
        spec = engine.registry.get(engine.get(run_id).workflow).map_of(state)
    except StatewrightError:  # a workflow this process does not know: nothing to say
        return None
    return spec.time_limit if spec is not None else None


def print_family(engine: Engine, run_id: str) -> None:
    """The run's parent, its children (the first ``SHOWN_CHILDREN``) and its Maps."""
    parent = engine.parent(run_id)
    if parent is not None:
        where = f"item {parent.position}" if parent.position is not None else parent.key
        out.print(f"[bold]parent[/bold] {parent.run_id} (state {parent.state}, {where})")
    children = engine.children(run_id, limit=SHOWN_CHILDREN)
    if children:
        table = Table("child", "run", "workflow", "status", "reason", title="children")
        for child in children:
            table.add_row(
                child.key,
                child.run_id or "",
                child.workflow,
                status_markup(child.status),
                child.reason or "",
            )
        out.print(table)
    maps = engine.maps(run_id)
    if maps:
        columns = ("state", "visit", "started", "done", "failed", "in flight", "item limit")
        table = Table(*columns, title="maps")
        for found in maps:
            limit = _item_time_limit(engine, run_id, found.state)
            table.add_row(
                found.state,
                str(found.visit),
                f"{found.started:,}{'' if found.exhausted and not found.queued else '+'}",
                f"{found.done:,}",
                f"{found.failed:,}",
                f"{found.in_flight:,} of {found.concurrency}",
                "default" if limit is None else f"{limit:g} s",
            )
        out.print(table)


def runs_failed_items(
    run_id: RunId,
    after: Annotated[
        int, typer.Option("--after", help="List items after this position (a page's last).")
    ] = -1,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List the failed items of a run's latest Map, with their reasons, by position.
    If the run failed in that Map, redriving it runs these items again (and only these).

    Example: statewright runs failed-items 0193a4f2 --after 1200
    """
    with engine_from_env() as engine:
        found_id = engine.resolve_run_id(run_id)
        found = engine.failed_items(found_id, after=after, limit=limit)
        retried = _retried_on_redrive(engine, found_id)
    if as_json:
        print_json([item.to_json() for item in found])
        return
    table = Table("item", "run", "attempts", "reason")
    for item in found:
        table.add_row(str(item.position), item.run_id or "", str(item.attempts), item.reason or "")
    out.print(table)
    if found and retried:
        out.print(
            f"The run failed in this Map: statewright runs redrive {found_id} runs its "
            "failed items again (only those)."
        )


def _retried_on_redrive(engine: Engine, run_id: str) -> bool:
    """Whether the run failed in the state of its latest Map, so a redrive would run that
    Map's failed items again."""
    run = engine.get(run_id)
    maps = engine.maps(run_id)
    return run.status == "failed" and bool(maps) and maps[-1].state == run.state
