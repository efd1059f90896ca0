"""The weekly reports' settings: read from the environment when first needed (by beat's
schedule, or by the group's first task), never at import, and each refused by name."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from celery.schedules import crontab

from statewright.errors import ConfigurationError
from statewright.workflows.relocation.mail import MailBackend, backend_from_url


def weekly_schedule(environ: Mapping[str, str] | None = None) -> crontab:
    """``STATEWRIGHT_REPORTS_CRON`` (minute hour day-of-month month day-of-week), Mondays 06:00
    by default; read when beat's schedule is built."""
    env = os.environ if environ is None else environ
    spec = env.get("STATEWRIGHT_REPORTS_CRON", "0 6 * * 1").split()
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
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReportsConfig:
        """The ``STATEWRIGHT_REPORTS_*`` and email variables, each checked."""
        env = os.environ if environ is None else environ
        batch = env.get("STATEWRIGHT_REPORTS_BATCH", "500")
        if not batch.isdigit() or int(batch) < 1:
            raise ConfigurationError(
                f"STATEWRIGHT_REPORTS_BATCH {batch!r} is not a positive number"
            )
        return cls(
            batch=int(batch),
            email_backend=env.get("STATEWRIGHT_EMAIL_BACKEND", "console"),
            email_from=env.get("STATEWRIGHT_EMAIL_FROM", cls.email_from),
        )

    @property
    def mailer(self) -> MailBackend:
        return backend_from_url(self.email_backend)
