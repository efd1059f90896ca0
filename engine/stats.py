"""Figures about the whole installation, reported periodically by relays and workers."""

from __future__ import annotations

import os
import tempfile

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from statewright.metrics import FanoutMetrics, Metrics, PrometheusMetrics
from statewright.models.engine import RUN_STATUSES, WorkflowRun
from statewright.persistence import Database


def report_run_counts(db: Database, metrics: Metrics) -> dict[tuple[str, str], int]:
    """Gauge ``runs`` by workflow and status; returns the counts."""
    with db.reads() as session:
        rows = session.execute(
            select(WorkflowRun.workflow, WorkflowRun.status, func.count()).group_by(
                WorkflowRun.workflow, WorkflowRun.status
            )
        ).all()
    counts = {(workflow, status): int(n) for workflow, status, n in rows}
    for workflow in {w for w, _ in counts}:
        for status in RUN_STATUSES:
            metrics.gauge(
                "runs", counts.get((workflow, status), 0), {"workflow": workflow, "status": status}
            )
    return counts


def prepare_multiprocess_metrics() -> str:
    """Point prometheus_client at a shared directory, so forked pool processes report too.

    Must run before ``prometheus_client`` creates any metric in this process tree.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = tempfile.mkdtemp(prefix="statewright-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def serve_metrics(port: int, metrics: Metrics) -> None:
    """Expose metrics on ``http://0.0.0.0:port/metrics`` (all processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    elif isinstance(metrics, PrometheusMetrics):
        registry = metrics.registry
    elif isinstance(metrics, FanoutMetrics):
        found = [b for b in metrics.backends if isinstance(b, PrometheusMetrics)]
        registry = found[0].registry if found else CollectorRegistry()
    else:
        registry = CollectorRegistry()
    start_http_server(port, registry=registry)
