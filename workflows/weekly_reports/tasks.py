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

import os
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from celery.schedules import crontab
from sqlalchemy.exc import IntegrityError, OperationalError

from statewright.context import StepContext, TaskContext
from statewright.definition import Workflow, step, task
from statewright.errors import ConfigurationError, InvalidParamsError, PermanentError
from statewright.fanout import ItemContext, PageContext
from statewright.joins import Map
from statewright.silo import SiloMode
from statewright.workflows.relocation.mail import MailBackend, backend_from_url
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


def weekly_schedule() -> crontab:
    """``STATEWRIGHT_REPORTS_CRON`` (minute hour day-of-month month day-of-week), Mondays 06:00
    by default."""
    spec = os.environ.get("STATEWRIGHT_REPORTS_CRON", "0 6 * * 1").split()
    if len(spec) != 5:
        raise ConfigurationError(
            f"STATEWRIGHT_REPORTS_CRON {' '.join(spec)!r} needs five fields: minute hour "
            "day-of-month month day-of-week"
        )
    minute, hour, day_of_month, month, day_of_week = spec
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
        )
    except ValueError as error:
        raise ConfigurationError(
            f"STATEWRIGHT_REPORTS_CRON {' '.join(spec)!r} is not a cron schedule ({error}); "
            "allowed: five fields, minute hour day-of-month month day-of-week, e.g. '0 6 * * 1'"
        ) from None


@dataclass(frozen=True)
class ReportsConfig:
    batch: int = 500
    period: timedelta = timedelta(days=7)
    email_backend: str = "console"
    email_from: str = "statewright <reports@statewright.invalid>"

    @classmethod
    def from_env(cls) -> ReportsConfig:
        batch = os.environ.get("STATEWRIGHT_REPORTS_BATCH", "500")
        if not batch.isdigit() or int(batch) < 1:
            raise ConfigurationError(
                f"STATEWRIGHT_REPORTS_BATCH {batch!r} is not a positive number"
            )
        return cls(
            batch=int(batch),
            email_backend=os.environ.get("STATEWRIGHT_EMAIL_BACKEND", "console"),
            email_from=os.environ.get("STATEWRIGHT_EMAIL_FROM", cls.email_from),
        )

    @property
    def mailer(self) -> MailBackend:
        return backend_from_url(self.email_backend)


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
                    lock=tc.is_postgresql,
                ):
                    tc.done(session)
                    return
            tc.metrics.incr("reports.delivered", 1, {"task": "deliver_reports"})
