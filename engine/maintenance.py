"""One maintenance round: relay due messages, re-dispatch expired leases, report run counts.

Long-running loops (the embedded worker, ``statewright relay``, the beat task) call
``MaintenanceLoop.round``; a round that fails (the database restarted, the broker
is away) is logged and counted, and the next round simply tries again.
"""

from __future__ import annotations

import time

import structlog

from statewright.api import Engine
from statewright.stats import report_run_counts

log = structlog.get_logger("statewright.maintenance")


class MaintenanceLoop:
    """Keeps the relay, the reaper and the run-count gauge going, whatever fails."""

    def __init__(
        self, engine: Engine, *, report_every: float = 10.0, only_run: str | None = None
    ) -> None:
        self.engine = engine
        #: Relay and reap this run only (a process that waits for one run).
        self.only_run = only_run
        self.report_every = report_every
        self._next_report = 0.0

    def round(self) -> tuple[int, int] | None:
        """One round; ``(sent, redispatched)``, or ``None`` if it failed and was logged."""
        try:
            sent, redispatched = self.engine.relay_round(only_run=self.only_run)
            if time.monotonic() >= self._next_report:
                report_run_counts(self.engine.db, self.engine.metrics)
                self._next_report = time.monotonic() + self.report_every
        except Exception as error:  # the next round retries; a dead relay would strand runs
            self.engine.metrics.incr("relay.round_failed")
            log.warning("maintenance round failed; retrying", error=repr(error)[:500])
            return None
        return sent, redispatched
