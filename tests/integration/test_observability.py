"""Logs, metrics and scrapes from real worker processes, read from real transports."""

from __future__ import annotations

import socket
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import free_port
from tests.integration.conftest import ClusterFactory


def test_worker_logs_metrics_and_scrape(make_cluster: ClusterFactory, redis_url: str) -> None:
    """A real worker's log lines carry the step's fields, statsd packets arrive over UDP, and
    `statewright worker --metrics-port` serves Prometheus metrics from its pool processes; the
    retried delivery continues the run in process, each step logged under its own task."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    statsd_port = listener.getsockname()[1]
    metrics_port = free_port()
    cluster = make_cluster(redis_url, STATEWRIGHT_STATSD_ADDR=f"127.0.0.1:{statsd_port}")
    worker = cluster.spawn(
        "worker",
        [
            str(Path(sys.executable).parent / "statewright"),
            "worker",
            "--concurrency",
            "2",
            "--metrics-port",
            str(metrics_port),
        ],
    )
    worker.wait_for("ready.")
    cluster.relay()
    engine = cluster.engine
    run = engine.start("pipeline", {"fail": {"fetching": 1}})
    assert engine.wait(run.id, timeout=60).status == "succeeded"

    completed = [x for x in cluster.worker_log_lines("step completed") if x.get("run") == run.id]
    assert {x["state"] for x in completed} == {"fetching", "transforming", "storing"}
    for line in completed:
        assert line["workflow"] == "pipeline"
        assert isinstance(line["attempt"], int)
        assert isinstance(line["token"], int)
        assert line["task"] == f"pipeline.{line['state']}"
    retried = cluster.worker_log_lines("step will be retried")
    assert retried
    assert retried[0]["attempt"] == 1
    # the retried delivery of fetching went on to the next two steps in process
    by_state = {x["state"]: x for x in completed}
    assert by_state["transforming"]["task_id"] == by_state["fetching"]["task_id"]
    assert by_state["storing"]["task_id"] == by_state["fetching"]["task_id"]

    packets: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("step.completed" in p for p in packets):
        try:
            packets.append(listener.recv(65535).decode())
        except TimeoutError:
            continue
    listener.close()
    assert any(p.startswith("statewright.step.completed:1|c|#state:") for p in packets), packets

    scrape = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "statewright_step_completed_total" not in scrape:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                scrape = response.read().decode()
        except OSError:
            time.sleep(0.2)
    assert 'statewright_step_completed_total{state="storing",workflow="pipeline"}' in scrape
    assert 'statewright_step_continued_total{state="storing",workflow="pipeline"}' in scrape
    assert "statewright_task_duration_seconds_bucket" in scrape
