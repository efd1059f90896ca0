"""``statewright reports run``: one weekly report schedule now, with a progress bar."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from statewright.cli.common import engine_from_env

reports_app = typer.Typer(
    help="Weekly organization reports (beat sends them on STATEWRIGHT_REPORTS_CRON).",
    no_args_is_help=True,
)


@reports_app.command("run")
def reports_run(
    report_date: Annotated[
        str | None, typer.Option("--date", help="Report date, e.g. 2026-11-23.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be sent; write nothing.")] = False,
) -> None:
    """Run one report schedule now (the same work beat starts weekly).

    To catch up on a missed week, or to see what would be sent with --dry-run.

    Example: statewright reports run --date 2026-11-23 --dry-run
    """
    from statewright.workflows.weekly_reports.run_now import dry_run as show
    from statewright.workflows.weekly_reports.run_now import run
    from statewright.workflows.weekly_reports.tasks import WeeklyReports, parse_date

    with engine_from_env() as engine:
        group = engine.registry.groups["weekly_reports"].instance
        assert isinstance(group, WeeklyReports)
        day = parse_date(report_date, datetime.now(UTC).date())
        if dry_run:
            show(engine, group, day)
        else:
            run(engine, group, day)
