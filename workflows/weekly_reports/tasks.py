"""Weekly organization reports: a workflow that maps over organizations.

A run reports on one date (``report_date``), keyed by it, so a date is reported once
however often it is started. ``dating`` checks the date; ``reporting`` is a Map over
the active organizations, paged by id (keyset: each page starts after the last
organization of the one before) and at most 50 at a time. Each organization's item
writes one delivery per owner (unique per date, organization and user) and, in the
same transaction, dispatches ``deliver_reports``, which sends the unsent ones. A
crash resumes where the Map was: committed pages stay started, each item's writes
and its count commit together, and a lost fill or item is sent again by the relay.
Beat's ``schedule_organizations`` starts the week's run.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError, OperationalError

from statewright import (
    InvalidParamsError,
    ItemContext,
    Map,
    PageContext,
    PermanentError,
    SiloMode,
    StepContext,
    TaskContext,
    Workflow,
    step,
    task,
)
from statewright.migrate import Migrations
from statewright.workflows.weekly_reports.config import ReportsConfig, weekly_schedule
from statewright.workflows.weekly_reports.report import (
    active_organizations,
    build_report,
    record_deliveries,
    send_next,
)

RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, IntegrityError, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 8,
}


def parse_date(value: str | None, today: date) -> date:
    if value is None:
        return today
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidParamsError(f"report date {value!r} is not a date like 2026-11-23") from None


def run_key(day: date) -> str:
    """The idempotency key of the run that reports on ``day``: one run per date."""
    return f"weekly-reports:{day.isoformat()}"


class WeeklyReports(Workflow):
    """Weekly reports to the owners of every active organization, a Map over them."""

    name = "weekly_reports"
    silo_mode = SiloMode.REGION
    transitions = [("dated", "dating", "reporting"), ("reported", "reporting", "done")]
    terminal = ["done"]
    business_key = "report_date"
    maps = {
        "reporting": Map(
            items="organizations",
            each="prepare",
            concurrency=50,
            page_size=500,
            attempts=8,
            on_done="reported",
            reason="Weekly reports could not be prepared for every organization",
        )
    }
    migrations = Migrations("weekly_reports")

    def __init__(self, config: ReportsConfig | None = None) -> None:
        self._config = config

    @property
    def config(self) -> ReportsConfig:
        """The given config, or the environment's, read when first needed (not at import)."""
        if self._config is None:
            self._config = ReportsConfig.from_env()
        return self._config

    @step(initial=True)
    def dating(self, ctx: StepContext) -> Literal["dated"]:
        """Check the report date (a bad one fails the run at once) and keep it."""
        try:
            day = parse_date(ctx.params.get("report_date"), ctx.now.date())
        except InvalidParamsError as error:
            raise PermanentError(str(error)) from None
        ctx.context["report_date"] = day.isoformat()
        return "dated"

    def organizations(self, ctx: PageContext, offset: int, limit: int) -> list[int]:
        """Active organizations after the last one of the page before, by id."""
        return active_organizations(ctx.session, ctx.after or 0, limit)

    def prepare(self, ctx: ItemContext) -> dict[str, int] | None:
        """One organization: its deliveries (once each) and their sending, after commit."""
        day = date.fromisoformat(ctx.context["report_date"])
        report = build_report(ctx.session, ctx.item, day, self.config.period)
        if report is None:
            return None  # deleted since it was listed: nothing to report
        written = record_deliveries(ctx.session, report, day, self.config.period, ctx.now)
        if written:
            ctx.enqueue("deliver_reports", organization_id=ctx.item, report_date=day.isoformat())
        return {"owners": len(report.owners), "written": written}

    @task(schedule=weekly_schedule, **RETRY)
    def schedule_organizations(self, tc: TaskContext, report_date: str | None = None) -> None:
        """Start the run that reports on ``report_date`` (today by default), once per date."""
        day = parse_date(report_date, tc.now.date())
        with tc.transaction() as session:
            run_id, started = tc.start_run(
                session, self.name, {"report_date": day.isoformat()}, run_key(day)
            )
            tc.done(session)
        tc.log.info("report run started" if started else "report run exists", run=run_id)

    @task(**RETRY)
    def deliver_reports(self, tc: TaskContext, organization_id: int, report_date: str) -> None:
        """Send the organization's unsent deliveries, each in its own transaction."""
        day = parse_date(report_date, tc.now.date())
        while True:
            with tc.transaction() as session:
                if not send_next(
                    session,
                    day,
                    organization_id,
                    self.config.mailer,
                    self.config.email_from,
                    tc.now,
                    lock=tc.skip_locked,
                ):
                    tc.done(session)
                    return
            tc.metrics.incr("reports.delivered", 1, {"task": "deliver_reports"})
