"""Running one weekly report schedule from the command line, with progress."""

from __future__ import annotations

import time
from datetime import date

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from statewright.api import Engine
from statewright.cli.common import err, out
from statewright.models.reports import ReportDelivery, ReportSchedule
from statewright.workflows.weekly_reports.report import active_organizations, build_report
from statewright.workflows.weekly_reports.tasks import WeeklyReports


def _pages(engine: Engine, batch: int) -> list[int]:
    ids: list[int] = []
    with engine.db.reads() as session:
        while page := active_organizations(session, ids[-1] if ids else 0, batch):
            ids.extend(page)
    return ids


def dry_run(engine: Engine, group: WeeklyReports, day: date) -> None:
    ids = _pages(engine, group.config.batch)
    table = Table(
        "organization",
        "members",
        "new",
        "teams",
        "projects",
        "owners",
        title=f"reports for {day.isoformat()} (dry run: nothing sent or written)",
    )
    recipients = 0
    with engine.db.reads() as session:
        for organization_id in ids:
            report = build_report(session, organization_id, day, group.config.period)
            if report is None:
                continue
            recipients += len(report.owners)
            if table.row_count < 20:
                table.add_row(
                    report.slug,
                    str(report.members),
                    str(report.new_members),
                    str(report.teams),
                    str(report.projects),
                    str(len(report.owners)),
                )
    out.print(table)
    out.print(f"{len(ids)} organizations, {recipients} reports would be delivered")


def run(engine: Engine, group: WeeklyReports, day: date) -> None:
    total = len(_pages(engine, group.config.batch))
    worker = None
    if engine.settings.embedded:
        from statewright.embedded import EmbeddedWorker

        worker = EmbeddedWorker(engine).start()
    try:
        context = engine.task_context("weekly_reports", "schedule_organizations")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            dispatching = progress.add_task("organizations dispatched", total=total)
            while group.dispatch_page(context, day):
                progress.update(dispatching, completed=_dispatched(engine, day))
            progress.update(dispatching, completed=total)
            if worker is not None:
                _follow_deliveries(engine, day, progress)
    finally:
        if worker is not None:
            worker.stop()
    out.print(f"report schedule {day.isoformat()}: {total} organizations dispatched")


def _dispatched(engine: Engine, day: date) -> int:
    with engine.db.reads() as session:
        found = session.execute(
            select(ReportSchedule.organizations).where(ReportSchedule.report_date == day)
        ).scalar()
    return int(found or 0)


def _follow_deliveries(engine: Engine, day: date, progress: Progress) -> None:
    bar = progress.add_task("reports delivered", total=None)
    settled = 0
    while settled < 10:  # a second of nothing left to send or write
        with engine.db.reads() as session:
            sent, pending = session.execute(
                select(func.count(ReportDelivery.sent_at), func.count()).where(
                    ReportDelivery.report_date == day
                )
            ).one()
        progress.update(bar, completed=sent, total=pending)
        busy = pending > sent or engine.relay.next_due() is not None
        settled = 0 if busy else settled + 1
        time.sleep(0.1)
