"""The Celery app for ``celery -A statewright.worker_app worker``.

The one place a module-level engine exists: Celery's command line needs an app
to import. Configuration comes from ``STATEWRIGHT_*`` environment variables.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_process_init, worker_process_shutdown

from statewright.api import Engine
from statewright.logs import configure_logging
from statewright.observability import setup_sentry
from statewright.stats import serve_metrics

configure_logging()
engine = Engine()
setup_sentry(engine.settings)
app = engine.celery
app.conf.beat_schedule = engine.beat_schedule()
app.set_default()


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    """The main worker process serves every pool process's metrics (multiprocess mode)."""
    port = engine.settings.metrics_port
    if port is not None:
        serve_metrics(port, engine.metrics)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not share its parent's database connections."""
    engine.db.engine.dispose(close=False)


@worker_process_shutdown.connect
def _clear_outbox(**_: Any) -> None:
    """Delete the rows of messages this pool process published (the relay would resend them)."""
    engine.dispatcher.flush_deletes()
