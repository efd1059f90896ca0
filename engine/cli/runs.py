"""``statewright runs``: start, find, inspect, follow and operate runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from statewright.cli.common import (
    JsonFlag,
    RunId,
    Status,
    engine_from_env,
    err,
    out,
    parse_json,
    print_history,
    print_json,
    print_run,
    status_markup,
    wait_with_progress,
    waited_exit_code,
)

if TYPE_CHECKING:
    from statewright.queries import RunInfo

runs_app = typer.Typer(
    help="Start, find, inspect, follow and operate runs. A RUN_ID may be shortened to any "
    "unique prefix (at least 4 characters), as with git hashes.",
    no_args_is_help=True,
)


@runs_app.command("start")
def runs_start(
    workflow: Annotated[str, typer.Argument(help="Workflow name (see `statewright workflows`).")],
    params: Annotated[str | None, typer.Option(help="Run parameters as a JSON object.")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key: starting again with it returns the same run."),
    ] = None,
    pause_at: Annotated[str | None, typer.Option(help="Pause when this state is reached.")] = None,
    wait: Annotated[
        bool, typer.Option(help="Follow the run until it finishes or pauses (see `runs wait`).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of a workflow; with --wait, follow it and exit 1 if it fails.

    Examples:

      statewright runs start onboarding --params '{"email": "a@example.com"}' --wait

      statewright runs start onboarding --params '{"email": "a@example.com"}' --key signup-42
    """
    parsed = parse_json(params, "--params")
    with engine_from_env() as engine:
        info = engine.start(workflow, parsed, idempotency_key=key, pause_at=pause_at)
        if wait:
            info = wait_with_progress(engine, info)
        print_run(info, as_json)
        raise typer.Exit(waited_exit_code(info))


@runs_app.command("wait")
def runs_wait(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Attach to a run and follow it until it finishes or pauses.

    Exits 1 if it failed or was cancelled. Ctrl-C stops following; the run goes on, and
    `runs wait` attaches again. On the embedded default this command runs the run's
    steps while it waits (that run's only).

    Example: statewright runs wait 0193a4f2
    """
    with engine_from_env() as engine:
        info = wait_with_progress(engine, engine.get(engine.resolve_run_id(run_id)))
        print_run(info, as_json)
        raise typer.Exit(waited_exit_code(info))


@runs_app.command("list")
def runs_list(
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    status: Annotated[Status | None, typer.Option(help="Only runs with this status.")] = None,
    key: Annotated[
        str | None, typer.Option(help="Only runs with this business key (e.g. a loan number).")
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(help="Continue after this run (the last id of the previous page)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Runs per page.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first, a page at a time (the next page: --after LAST_ID).

    Examples:

      statewright runs list --status failed

      statewright runs list --workflow relocation --key acme

      statewright runs list --after 0193a4f2c81e7d0b9a2e4c61f3d58b07 --limit 100
    """
    with engine_from_env() as engine:
        after_id = engine.resolve_run_id(after) if after is not None else None
        found = engine.list(
            workflow=workflow,
            status=status.value if status else None,
            key=key,
            after=after_id,
            limit=limit,
        )
    if as_json:
        print_json([r.to_json() for r in found])
    else:
        _print_runs(found)
    if len(found) == limit:
        err.print(
            f"more runs may follow: statewright runs list --after {found[-1].id}",
            highlight=False,
            soft_wrap=True,
        )


def _print_runs(found: list[RunInfo]) -> None:
    table = Table("run", "workflow", "state", "status", "created", "key / reason")
    table.columns[0].no_wrap = True
    table.columns[0].min_width = 32
    for column in table.columns[1:5]:
        column.no_wrap = True
    table.columns[5].overflow = "fold"
    for r in found:
        table.add_row(
            r.id,
            r.workflow,
            r.state,
            status_markup(r.status),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            " — ".join(x for x in (r.business_key, r.failure_reason) if x),
        )
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Show a run and its history.

    Example: statewright runs show 0193a4f2
    """
    with engine_from_env() as engine:
        found = engine.resolve_run_id(run_id)
        info = engine.get(found)
        history = engine.history(found)
    if as_json:
        print_json({**info.to_json(), "history": [h.to_json() for h in history]})
        return
    print_run(info, False)
    print_history(history)


@runs_app.command("export")
def runs_export(
    run_id: RunId,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Export a run's history as JSON, to replay it in tests (`statewright replay --file`).

    Example: statewright runs export 0193a4f2 -o tests/histories/relocation-happy.json
    """
    with engine_from_env() as engine:
        text = json.dumps(engine.export_history(engine.resolve_run_id(run_id)), indent=1) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


@runs_app.command("history")
def runs_history(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Print a run's history rows: every transition, retry, poll, pause and failure.

    Example: statewright runs history 0193a4f2 --json
    """
    with engine_from_env() as engine:
        history = engine.history(engine.resolve_run_id(run_id))
    if as_json:
        print_json([h.to_json() for h in history])
        return
    print_history(history)


@runs_app.command("resume")
def runs_resume(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Resume a paused run at the exact step where it stopped.

    Example: statewright runs resume 0193a4f2
    """
    with engine_from_env() as engine:
        print_run(engine.resume(engine.resolve_run_id(run_id)), as_json)


@runs_app.command("cancel")
def runs_cancel(
    run_id: RunId,
    at: Annotated[
        str | None, typer.Option(help="Cancel when this state ahead is reached, not now.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a run in order, at its next step boundary, or when it reaches a state ahead.

    The running step finishes and commits, then the run stops as cancelled. Use this
    normally; use `abort` only for a step that must not finish.

    Examples:

      statewright runs cancel 0193a4f2

      statewright runs cancel 0193a4f2 --at importing
    """
    with engine_from_env() as engine:
        print_run(engine.cancel(engine.resolve_run_id(run_id), at=at), as_json)


@runs_app.command("clear-pause")
def runs_clear_pause(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Drop a pause asked for (now or with `runs pause --at`) before it applies.

    Example: statewright runs clear-pause 0193a4f2
    """
    with engine_from_env() as engine:
        print_run(engine.clear_pause(engine.resolve_run_id(run_id)), as_json)


@runs_app.command("abort")
def runs_abort(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Fail a run now, throwing away the result of a step still running.

    The running step's completion is fenced off and the run is failed. For a stuck or
    harmful step; `cancel` lets the step finish instead.

    Example: statewright runs abort 0193a4f2
    """
    with engine_from_env() as engine:
        print_run(engine.abort(engine.resolve_run_id(run_id)), as_json)


@runs_app.command("redrive")
def runs_redrive(run_id: RunId, as_json: JsonFlag = False) -> None:
    """Continue a failed run from the state it failed in, with fresh attempts.

    Use it once what made the run fail is fixed.

    Example: statewright runs redrive 0193a4f2
    """
    with engine_from_env() as engine:
        print_run(engine.redrive(engine.resolve_run_id(run_id)), as_json)


@runs_app.command("pause")
def runs_pause(
    run_id: RunId,
    at: Annotated[
        str | None, typer.Option(help="Pause when this state ahead is reached, not now.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Pause a run at its next step boundary, or when it reaches a state ahead.

    `runs resume` continues it at the exact step where it stopped.

    Examples:

      statewright runs pause 0193a4f2

      statewright runs pause 0193a4f2 --at welcoming
    """
    with engine_from_env() as engine:
        print_run(engine.pause(engine.resolve_run_id(run_id), at=at), as_json)


@runs_app.command("signal")
def runs_signal(
    run_id: RunId,
    name: Annotated[str, typer.Argument(help="A trigger declared from the run's state.")],
    data: Annotated[str | None, typer.Option(help="JSON object merged into the context.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Deliver an external event (an approval, a callback) that fires a declared trigger.

    Example: statewright runs signal 0193a4f2 approved --data '{"by": "support"}'
    """
    parsed = parse_json(data, "--data")
    with engine_from_env() as engine:
        print_run(engine.signal(engine.resolve_run_id(run_id), name, parsed), as_json)
