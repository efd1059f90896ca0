"""Turning on error tracking for a process, from its settings."""

from __future__ import annotations

from statewright.config import Settings
from statewright.redaction import redact_sentry_event


def setup_sentry(settings: Settings) -> bool:
    """Initialise sentry-sdk when ``STATEWRIGHT_SENTRY_DSN`` is set; ``True`` if it was.

    sentry-sdk is imported only then (it costs a command a tenth of a second to start).
    """
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[CeleryIntegration(), SqlalchemyIntegration()],
        traces_sample_rate=0.0,
        before_send=redact_sentry_event,
    )
    return True
