"""Commands that read definitions and histories: workflows, diagram, replay, demo."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from statewright.cli.common import (
    JsonFlag,
    engine_without_database,
    ensure_migrated,
    out,
    print_json,
)

if TYPE_CHECKING:
    from statewright.api import Engine
    from statewright.definition import Definition


class DiagramFormat(StrEnum):
    """``--format`` choices of ``statewright diagram`` (``statewright.diagrams.FORMATS``)."""

    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    png = "png"


def inspect_commands(app: typer.Typer) -> None:
    """Add this module's commands to the root ``app``."""
    app.command("workflows")(workflows)
    app.command("diagram")(diagram)
    app.command("replay")(replay_command)
    app.command("demo")(demo)


def workflows(as_json: JsonFlag = False) -> None:
    """List the registered workflows: each state and where each of its triggers leads.

    Example: statewright workflows --json
    """
    engine = engine_without_database()
    try:
        rows = [_workflow_json(d) for d in engine.registry.definitions.values()]
        if as_json:
            print_json(rows)
            return
        for definition in engine.registry.definitions.values():
            out.print(_workflow_table(definition))
    finally:
        engine.close()


def _workflow_json(d: Definition) -> dict[str, Any]:
    return {
        "name": d.name,
        "version": d.version,
        "initial": d.initial,
        "states": list(d.states),
        "terminal": sorted(d.terminal),
        "edges": [{"trigger": e.trigger, "source": e.source, "dest": e.dest} for e in d.edges],
    }


def _workflow_table(d: Definition) -> Table:
    """One row per state; a state with several triggers shows one line per branch."""
    table = Table("state", "trigger", "leads to", title=f"{d.name} (version {d.version[:12]})")
    for state in d.states:
        edges = [e for e in d.edges if e.source == state]
        label = f"{state} (start)" if state == d.initial else state
        if not edges:
            table.add_row(label, "", "[dim]end[/dim]" if state in d.terminal else "")
        for n, edge in enumerate(edges):
            branch = "" if len(edges) == 1 else ("├ " if n < len(edges) - 1 else "└ ")
            table.add_row(label if n == 0 else "", branch + edge.trigger, edge.dest)
    return table


def demo(
    orgs: Annotated[int, typer.Option(min=1, max=20, help="Organizations in the sample.")] = 3,
    users: Annotated[int, typer.Option(min=1, max=100_000, help="Users in the sample.")] = 300,
    workdir: Annotated[Path, typer.Option(help="Where the demo's files go.")] = Path(
        ".statewright/demo"
    ),
    web: Annotated[
        bool, typer.Option("--web", help="Serve the console while it runs, until Ctrl-C.")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The console's port.")] = 8080,
) -> None:
    """Relocate a sample installation end to end, embedded, with progress.

    The quickest way to see statewright work; it touches nothing outside --workdir.
    With --web the console serves the demo's database while it runs, until Ctrl-C.

    Examples:

      statewright demo --orgs 5 --users 2000

      statewright demo --web --port 8080
    """
    from statewright.demo import run_demo
    from statewright.logs import configure_logging

    configure_logging(level="WARNING")
    code = run_demo(out, orgs=orgs, users=users, workdir=workdir, web_port=port if web else None)
    raise typer.Exit(code)


def diagram(
    workflow: Annotated[str | None, typer.Argument(help="Workflow name.")] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Show this run's path (id or unique prefix).")
    ] = None,
    fmt: Annotated[
        DiagramFormat, typer.Option("--format", help="Diagram format.")
    ] = DiagramFormat.mermaid,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    all_to: Annotated[
        Path | None, typer.Option("--all", help="Write .mmd and .svg of every workflow here.")
    ] = None,
) -> None:
    """Draw a workflow, or one run's path through it (svg and png need -o).

    Examples:

      statewright diagram onboarding

      statewright diagram --run 0193a4f2 --format svg -o run.svg
    """
    from statewright.diagrams import render, write_all

    engine = engine_without_database()
    try:
        if all_to is not None:
            for path in write_all(engine.registry.definitions.values(), all_to):
                out.print(f"wrote {path}")
            return
        if workflow is None and run is None:
            raise typer.BadParameter("name a WORKFLOW, or give --run or --all")
        info = history = None
        if run is not None:
            ensure_migrated(engine)
            info = engine.get(engine.resolve_run_id(run))
            history = engine.history(info.id)
            if workflow is not None and workflow != info.workflow:
                raise typer.BadParameter(
                    f"run {info.id} is a {info.workflow!r} run, not {workflow!r}"
                )
        definition = engine.registry.get(info.workflow if info else str(workflow))
        data = render(definition, fmt.value, run=info, history=history)
    finally:
        engine.close()
    if output is None:
        if fmt in (DiagramFormat.svg, DiagramFormat.png) and sys.stdout.isatty():
            raise typer.BadParameter(
                f"{fmt.value} is binary; write it with -o FILE", param_hint="-o"
            )
        sys.stdout.buffer.write(data)
        return
    output.write_bytes(data)
    out.print(f"wrote {output}")


def replay_command(
    run_id: Annotated[str | None, typer.Argument(help="Replay this run (id or prefix).")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Replay every run.")] = False,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Replay an exported history.")
    ] = None,
    at: Annotated[
        int | None, typer.Option(help="Rebuild the run as it stood after N rows.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check recorded histories against the current definitions; exit 1 on the first break.

    Use it before deploying a changed workflow: a run in flight that the new definition
    could not continue is reported with the first transition it no longer allows.

    Examples:

      statewright replay --all

      statewright replay --file run.json --at 3
    """
    from statewright.replay import load_history

    if not (run_id or all_runs or files):
        raise typer.BadParameter("give a RUN_ID, --all or --file")
    engine = engine_without_database()
    try:
        recorded = []
        for path in files or []:
            try:
                recorded.append(load_history(json.loads(path.read_text()), str(path)))
            except (OSError, json.JSONDecodeError) as error:
                raise typer.BadParameter(f"{path}: {error}", param_hint="--file") from None
        if run_id or all_runs:
            ensure_migrated(engine)
            ids = [engine.resolve_run_id(run_id)] if run_id else _all_run_ids(engine)
            recorded += [load_history(engine.export_history(i), f"run {i}") for i in ids]
        results = _replay_all(engine, recorded, at)
    finally:
        engine.close()
    _print_replays(results, as_json)
    if any(not r["ok"] for r in results):
        raise typer.Exit(1)


def _replay_all(engine: Engine, recorded: list[Any], at: int | None) -> list[dict[str, Any]]:
    from statewright.replay import ReplayDivergenceError, replay

    results: list[dict[str, Any]] = []
    for run in recorded:
        try:
            state = replay(engine.registry.get(run.workflow), run, until=at)
            results.append(
                {
                    "run": run.run_id,
                    "ok": True,
                    "position": state.position,
                    "state": state.state,
                    "status": state.status,
                }
            )
        except ReplayDivergenceError as error:
            results.append({"run": run.run_id, "ok": False, "error": str(error)})
    return results


def _print_replays(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(results)
        return
    table = Table("run", "result", "position", "state", "status")
    table.columns[0].no_wrap = True
    for r in results:
        table.add_row(
            r["run"],
            "[green]ok[/]" if r["ok"] else f"[red]{r['error']}[/]",
            str(r.get("position", "")),
            r.get("state", ""),
            r.get("status", ""),
        )
    out.print(table)


def _all_run_ids(engine: Engine) -> list[str]:
    """Every run, oldest first (the oldest are the likeliest to be stranded by a change)."""
    from sqlalchemy import select

    from statewright.models.engine import WorkflowRun

    with engine.db.reads() as session:
        return list(
            session.execute(
                select(WorkflowRun.id).order_by(WorkflowRun.created_at, WorkflowRun.id)
            ).scalars()
        )
