"""The Celery app for ``celery -A engine.worker_app worker``.

The one place a module-level engine exists: Celery's command line needs an app
to import. Configuration comes from ``STATEWRIGHT_*`` environment variables.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from engine.api import Engine
from engine.logs import configure_logging
from engine.observability import setup_sentry

configure_logging()
engine = Engine()
setup_sentry(engine.settings)
app = engine.celery
app.set_default()


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not share its parent's database connections."""
    engine.db.engine.dispose(close=False)
