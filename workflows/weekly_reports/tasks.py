"""Weekly organization reports: a beat-scheduled fan-out, resumable and delivered once.

``schedule_organizations`` walks active organizations in keyset pages; each page's
``prepare_organization_report`` messages are dispatched after the commit that
advances the schedule's high-water mark, so a retry or a crash resumes at the mark.
``prepare_organization_report`` writes one delivery per owner (unique per date,
organization and user), and ``deliver_reports`` sends the unsent ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from celery.schedules import crontab
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from statewright.context import TaskContext
from statewright.definition import TaskGroup, task
from statewright.errors import ConfigurationError, InvalidParamsError
from statewright.models.reports import ReportSchedule
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


def _bucket(organization_id: int, report_date: str) -> str:
    return f"batch{organization_id // 1000}"


class WeeklyReports(TaskGroup):
    """Weekly reports to the owners of every active organization."""

    name = "weekly_reports"
    silo_mode = SiloMode.REGION

    def __init__(self, config: ReportsConfig | None = None) -> None:
        self._config = config

    @property
    def config(self) -> ReportsConfig:
        """The given config, or the environment's, read when first needed (not at import)."""
        if self._config is None:
            self._config = ReportsConfig.from_env()
        return self._config

    @task(schedule=weekly_schedule, **RETRY)
    def schedule_organizations(self, tc: TaskContext, report_date: str | None = None) -> None:
        """Dispatch one report per active organization, page by page, from the mark on."""
        day = parse_date(report_date, tc.now.date())
        while self.dispatch_page(tc, day):
            pass

    def dispatch_page(self, tc: TaskContext, day: date) -> bool:
        """Dispatch the next page and move the mark, in one transaction; ``False`` when done."""
        with tc.transaction() as session:
            schedule = _schedule(session, day, tc)
            if schedule.status == "done":
                return False
            page = active_organizations(session, schedule.high_water, self.config.batch)
            if not page:
                schedule.status = "done"
                schedule.finished_at = tc.now
                tc.log.info(
                    "report schedule finished",
                    date=day.isoformat(),
                    organizations=schedule.organizations,
                )
                return False
            for organization_id in page:
                tc.enqueue(
                    session,
                    "prepare_organization_report",
                    organization_id=organization_id,
                    report_date=day.isoformat(),
                )
            schedule.high_water = page[-1]
            schedule.organizations += len(page)
        tc.metrics.incr("reports.dispatched", len(page), {"task": "schedule_organizations"})
        return True

    @task(stat_suffix=_bucket, **RETRY)
    def prepare_organization_report(
        self, tc: TaskContext, organization_id: int, report_date: str
    ) -> None:
        """Write the organization's deliveries (once each) and have them sent after commit."""
        day = parse_date(report_date, tc.now.date())
        with tc.transaction() as session:
            report = build_report(session, organization_id, day, self.config.period)
            if report is None:
                return
            if record_deliveries(session, report, day, self.config.period, tc.now):
                tc.enqueue(
                    session,
                    "deliver_reports",
                    organization_id=organization_id,
                    report_date=report_date,
                )
            tc.done(session)  # the deliveries, their sending task and the done mark at once

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


def _schedule(session: Session, day: date, tc: TaskContext) -> ReportSchedule:
    statement = select(ReportSchedule).where(ReportSchedule.report_date == day)
    if tc.is_postgresql:
        statement = statement.with_for_update()
    schedule = session.execute(statement).scalar_one_or_none()
    if schedule is None:
        schedule = ReportSchedule(
            report_date=day, high_water=0, organizations=0, status="running", started_at=tc.now
        )
        session.add(schedule)
        session.flush()
    return schedule
