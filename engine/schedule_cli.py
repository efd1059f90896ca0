"""``statewright schedules …`` and ``statewright runs purge``: schedules and retention."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from statewright.cli.common import JsonFlag, engine_from_env, out, parse_json, print_json, print_run
from statewright.schedule import DEFAULT_CATCH_UP_LIMIT, MAX_CATCH_UP_LIMIT, MISSED_POLICIES

if TYPE_CHECKING:
    from statewright.scheduler import ScheduleInfo

schedules_app = typer.Typer(
    help="Cron schedules that start runs: list, add, remove, pause, resume, trigger.",
    invoke_without_command=True,
)

Name = Annotated[str, typer.Argument(help="Schedule name, as `statewright schedules` lists it.")]


@schedules_app.callback()
def schedules_main(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List schedules: next fire time, missed-fire policy, paused or not.

    Example: statewright schedules --workflow onboarding
    """
    if ctx.invoked_subcommand is not None:
        return
    with engine_from_env() as engine:
        if workflow is not None:
            engine.registry.get(workflow)
        found = engine.schedules.list(workflow=workflow)
    if as_json:
        print_json([s.to_json() for s in found])
        return
    table = Table("schedule", "workflow", "cron", "timezone", "next fire (UTC)", "missed", "")
    for s in found:
        table.add_row(
            s.name,
            s.workflow,
            s.cron,
            s.timezone,
            _when(s.next_fire_at) if not s.paused else "",
            s.missed if s.missed == "skip" else f"catch_up ≤{s.catch_up_limit}",
            "[yellow]paused[/]" if s.paused else "",
        )
    out.print(table)


@schedules_app.command("add")
def schedules_add(
    name: Name,
    workflow: Annotated[str, typer.Argument(help="The workflow each fire time starts.")],
    cron: Annotated[str, typer.Argument(help="Cron expression, e.g. '0 6 * * MON'.")],
    params: Annotated[str | None, typer.Option(help="Run parameters as a JSON object.")] = None,
    timezone: Annotated[str, typer.Option(help="IANA timezone the cron is read in.")] = "UTC",
    missed: Annotated[
        str, typer.Option(help=f"Missed fire times: {' or '.join(MISSED_POLICIES)}.")
    ] = "skip",
    catch_up_limit: Annotated[
        int, typer.Option(help=f"Most missed fire times caught up (1-{MAX_CATCH_UP_LIMIT}).")
    ] = DEFAULT_CATCH_UP_LIMIT,
    paused: Annotated[bool, typer.Option(help="Add it paused.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a schedule that starts a run of WORKFLOW at every fire time of CRON.

    Example: statewright schedules add nightly-export pipeline '0 2 * * *'
             --timezone Europe/Berlin --missed catch_up --catch-up-limit 3
    """
    parsed = parse_json(params, "--params")
    with engine_from_env() as engine:
        info = engine.schedules.add(
            name,
            workflow,
            cron,
            params=parsed,
            timezone=timezone,
            missed=missed,
            catch_up_limit=catch_up_limit,
            paused=paused,
        )
    _print(info, as_json)


def _operation(verb: str, doc: str) -> None:
    def command(name: Name, as_json: JsonFlag = False) -> None:
        with engine_from_env() as engine:
            info = getattr(engine.schedules, verb)(name)
        _print(info, as_json)

    command.__doc__ = f"{doc}\n\nExample: statewright schedules {verb} NAME"
    schedules_app.command(verb)(command)


_operation("pause", "Stop a schedule firing until it is resumed.")
_operation("resume", "Fire a paused schedule again, from its next fire time after now.")


@schedules_app.command("remove")
def schedules_remove(name: Name, as_json: JsonFlag = False) -> None:
    """Remove a schedule an operator added (a declared one is paused instead).

    Example: statewright schedules remove nightly-export
    """
    with engine_from_env() as engine:
        info = engine.schedules.remove(name)
    if as_json:
        print_json(info.to_json())
    else:
        out.print(f"removed schedule {info.name}; the runs it started are kept")


@schedules_app.command("trigger")
def schedules_trigger(name: Name, as_json: JsonFlag = False) -> None:
    """Start a run of a schedule now (its fire times stay as they are).

    Example: statewright schedules trigger onboarding.nightly
    """
    with engine_from_env() as engine:
        print_run(engine.schedules.trigger(name), as_json)


def runs_purge(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of finished runs to delete: 30d, 12h, 2w.")
    ],
    batch: Annotated[
        int | None,
        typer.Option(min=1, help="Runs deleted per transaction (default 500; at most 10,000)."),
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's runs.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Count what would be deleted.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete finished runs (succeeded, failed, cancelled) older than an age, with their
    history, in batches; running and paused runs are never touched.

    Example: statewright runs purge --older-than 30d --dry-run
    """
    from statewright.config import parse_age
    from statewright.errors import ConfigurationError
    from statewright.retention import DEFAULT_BATCH

    try:
        age = parse_age(older_than, "--older-than")
    except ConfigurationError as error:
        raise typer.BadParameter(str(error), param_hint="--older-than") from None
    with engine_from_env() as engine:
        result = engine.purge(age, batch=batch or DEFAULT_BATCH, workflow=workflow, dry_run=dry_run)
    if as_json:
        print_json(
            {
                "runs": result.runs,
                "history": result.history,
                "batches": result.batches,
                "cutoff": result.cutoff.isoformat(),
                "dry_run": result.dry_run,
            }
        )
        return
    verb = "would delete" if result.dry_run else "deleted"
    batches = "" if result.dry_run else f" in {result.batches} batch(es)"
    out.print(
        f"{verb} {result.runs} run(s) and {result.history} history row(s){batches}: "
        f"runs finished before {_when(result.cutoff)} UTC"
    )


def _print(info: ScheduleInfo, as_json: bool) -> None:
    if as_json:
        print_json(info.to_json())
        return
    table = Table(show_header=False, box=None)
    for label, value in [
        ("schedule", info.name),
        ("workflow", info.workflow),
        ("cron", f"{info.cron} ({info.timezone})"),
        ("missed", info.missed if info.missed == "skip" else f"catch_up ≤{info.catch_up_limit}"),
        ("status", "paused" if info.paused else "active"),
        ("next fire", "" if info.paused else f"{_when(info.next_fire_at)} UTC"),
        ("last fired", _when(info.last_fired_at)),
        ("last run", info.last_run_id or ""),
    ]:
        if value:
            table.add_row(f"[bold]{label}[/bold]", value)
    out.print(table)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""
