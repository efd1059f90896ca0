"""Metrics backends (in-memory, DogStatsD over UDP, Prometheus) and what an engine run emits."""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from statewright import Engine, InMemoryMetrics, PrometheusMetrics, StatsdMetrics
from statewright.testing import WorkflowHarness

# -- in memory ----------------------------------------------------------------------


def test_in_memory_records_counts_timings_and_gauges_with_tags() -> None:
    """Each call keeps one sample with its kind, name, value and tags."""
    metrics = InMemoryMetrics()
    metrics.incr("step.completed", tags={"workflow": "w", "state": "a"})
    metrics.timing("step.duration", 12.5, {"workflow": "w", "state": "a"})
    metrics.gauge("task.memory_change", -4096, {"task": "w.a"})
    metrics.incr("outbox.sent", 3)

    assert [(s.kind, s.name, s.value, dict(s.tags)) for s in metrics.samples] == [
        ("count", "step.completed", 1, {"workflow": "w", "state": "a"}),
        ("timing", "step.duration", 12.5, {"workflow": "w", "state": "a"}),
        ("gauge", "task.memory_change", -4096, {"task": "w.a"}),
        ("count", "outbox.sent", 3, {}),
    ]


def test_in_memory_find_filters_by_name_and_tags() -> None:
    """find() returns the samples of one name whose tags include every given tag."""
    metrics = InMemoryMetrics()
    metrics.incr("step.completed", tags={"workflow": "w", "state": "a"})
    metrics.incr("step.completed", tags={"workflow": "w", "state": "b"})
    metrics.incr("step.completed", tags={"workflow": "v", "state": "a"})
    metrics.incr("step.failed", tags={"workflow": "w", "state": "a"})

    assert len(metrics.find("step.completed")) == 3
    assert len(metrics.find("step.completed", workflow="w")) == 2
    assert [s.tags["state"] for s in metrics.find("step.completed", workflow="w")] == ["a", "b"]
    assert len(metrics.find("step.completed", workflow="w", state="a")) == 1
    assert metrics.find("step.completed", workflow="x") == []
    assert metrics.find("step.completed", reason="fenced") == []
    assert metrics.find("no.such.metric") == []


def test_in_memory_total_sums_matching_values() -> None:
    """total() adds up the values of the matching samples, 0 when none match."""
    metrics = InMemoryMetrics()
    metrics.incr("outbox.sent", 3, {"queue": "q"})
    metrics.incr("outbox.sent", 4, {"queue": "q"})
    metrics.incr("outbox.sent", 10, {"queue": "other"})

    assert metrics.total("outbox.sent") == 17
    assert metrics.total("outbox.sent", queue="q") == 7
    assert metrics.total("outbox.sent", queue="none") == 0
    assert metrics.total("relay.sent") == 0


def test_in_memory_keeps_a_copy_of_the_tags() -> None:
    """Changing the caller's tag dict afterwards does not change the recorded sample."""
    metrics = InMemoryMetrics()
    tags = {"workflow": "w"}
    metrics.incr("step.completed", tags=tags)
    tags["workflow"] = "changed"
    assert metrics.samples[0].tags == {"workflow": "w"}
    assert len(metrics.find("step.completed", workflow="w")) == 1


def test_in_memory_is_safe_across_threads() -> None:
    """Samples recorded from many threads at once are all kept."""
    metrics = InMemoryMetrics()

    def record() -> None:
        for _ in range(500):
            metrics.incr("hits", tags={"t": "x"})

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert metrics.total("hits", t="x") == 4000


# -- statsd -------------------------------------------------------------------------


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    """A real UDP socket on 127.0.0.1, on a free port, standing in for a statsd agent."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    yield listener
    listener.close()


@pytest.fixture
def statsd(udp_listener: socket.socket) -> Iterator[StatsdMetrics]:
    """A StatsdMetrics sending to the listener."""
    host, port = udp_listener.getsockname()
    metrics = StatsdMetrics(host, port)
    yield metrics
    metrics._socket.close()


def receive(listener: socket.socket) -> str:
    data, _ = listener.recvfrom(65535)
    return data.decode()


def test_statsd_counter_line(statsd: StatsdMetrics, udp_listener: socket.socket) -> None:
    """A count is one DogStatsD line with |c and tags sorted by key."""
    statsd.incr("step.completed", tags={"workflow": "w", "state": "a"})
    assert receive(udp_listener) == "statewright.step.completed:1|c|#state:a,workflow:w"


def test_statsd_timing_line(statsd: StatsdMetrics, udp_listener: socket.socket) -> None:
    """A timing is sent in milliseconds with |ms."""
    statsd.timing("step.duration", 12.5, {"workflow": "w", "state": "a"})
    assert receive(udp_listener) == "statewright.step.duration:12.5|ms|#state:a,workflow:w"


def test_statsd_gauge_line(statsd: StatsdMetrics, udp_listener: socket.socket) -> None:
    """A gauge is sent with |g, negative values included."""
    statsd.gauge("task.memory_change", -4096, {"task": "w.a"})
    assert receive(udp_listener) == "statewright.task.memory_change:-4096|g|#task:w.a"


def test_statsd_lines_without_tags_and_with_values(
    statsd: StatsdMetrics, udp_listener: socket.socket
) -> None:
    """Untagged samples have no |# part; counter increments carry their value."""
    statsd.incr("outbox.sent", 3)
    statsd.timing("outbox.lag", 250)
    statsd.gauge("queue.depth", 0)
    assert [receive(udp_listener) for _ in range(3)] == [
        "statewright.outbox.sent:3|c",
        "statewright.outbox.lag:250|ms",
        "statewright.queue.depth:0|g",
    ]


def test_statsd_custom_prefix(udp_listener: socket.socket) -> None:
    """The prefix given to the backend replaces 'statewright'."""
    host, port = udp_listener.getsockname()
    metrics = StatsdMetrics(host, port, prefix="acme.jobs")
    try:
        metrics.incr("step.failed", tags={"reason": "timeout"})
        assert receive(udp_listener) == "acme.jobs.step.failed:1|c|#reason:timeout"
    finally:
        metrics._socket.close()


def test_statsd_over_ipv6() -> None:
    """A host with a colon is an IPv6 address and is sent to over IPv6."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        listener.bind(("::1", 0))
    except OSError:
        listener.close()
        pytest.skip("IPv6 loopback is not available")
    listener.settimeout(5)
    metrics = StatsdMetrics("::1", listener.getsockname()[1])
    try:
        metrics.incr("step.completed", tags={"workflow": "w"})
        assert receive(listener) == "statewright.step.completed:1|c|#workflow:w"
    finally:
        metrics._socket.close()
        listener.close()


def closed_udp_port() -> int:
    """A port nothing listens on (bound a moment ago, then closed)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


@pytest.mark.parametrize(
    ("host", "port", "tag_value"),
    [
        pytest.param("127.0.0.1", None, "v", id="nobody-listening"),
        pytest.param("127.0.0.1", 0, "v", id="port-zero-invalid"),
        pytest.param("127.0.0.1", None, "x" * 70_000, id="datagram-too-long"),
    ],
)
def test_statsd_never_raises_when_sending_fails(
    host: str, port: int | None, tag_value: str
) -> None:
    """Send errors (no listener, invalid address, oversized datagram) are swallowed."""
    metrics = StatsdMetrics(host, closed_udp_port() if port is None else port)
    try:
        for _ in range(3):  # later sends may see ICMP errors from earlier ones
            metrics.incr("step.completed", tags={"workflow": tag_value})
            metrics.timing("step.duration", 1.5, {"workflow": tag_value})
            metrics.gauge("task.memory_change", 1, {"task": tag_value})
    finally:
        metrics._socket.close()


def test_statsd_never_raises_after_its_socket_breaks() -> None:
    """Even a closed socket (EBADF on send) does not raise into the measured work."""
    metrics = StatsdMetrics("127.0.0.1", closed_udp_port())
    metrics._socket.close()
    metrics.incr("step.completed")
    metrics.timing("step.duration", 1.0)
    metrics.gauge("task.memory_change", 0)


# -- prometheus ---------------------------------------------------------------------


def exposition(registry: CollectorRegistry) -> list[str]:
    return generate_latest(registry).decode().splitlines()


def test_prometheus_counter_has_namespace_and_labels() -> None:
    """incr() increments statewright_<name>_total with the tags as labels."""
    metrics = PrometheusMetrics()
    metrics.incr("step.completed", tags={"workflow": "w", "state": "a"})
    metrics.incr("step.completed", 2, tags={"workflow": "w", "state": "a"})
    metrics.incr("step.completed", tags={"workflow": "w", "state": "b"})

    lines = exposition(metrics.registry)
    assert "# TYPE statewright_step_completed_total counter" in lines
    assert 'statewright_step_completed_total{state="a",workflow="w"} 3.0' in lines
    assert 'statewright_step_completed_total{state="b",workflow="w"} 1.0' in lines
    value = metrics.registry.get_sample_value(
        "statewright_step_completed_total", {"state": "a", "workflow": "w"}
    )
    assert value == 3.0


def test_prometheus_timing_is_a_histogram_in_seconds() -> None:
    """timing() observes milliseconds as seconds in statewright_<name>_seconds."""
    metrics = PrometheusMetrics()
    metrics.timing("step.duration", 250, {"workflow": "w", "state": "a"})
    metrics.timing("step.duration", 1500, {"workflow": "w", "state": "a"})

    lines = exposition(metrics.registry)
    assert "# TYPE statewright_step_duration_seconds histogram" in lines
    assert 'statewright_step_duration_seconds_count{state="a",workflow="w"} 2.0' in lines
    assert 'statewright_step_duration_seconds_sum{state="a",workflow="w"} 1.75' in lines
    assert 'statewright_step_duration_seconds_bucket{le="0.25",state="a",workflow="w"} 1.0' in lines
    assert 'statewright_step_duration_seconds_bucket{le="2.5",state="a",workflow="w"} 2.0' in lines


def test_prometheus_gauge_keeps_the_last_value() -> None:
    """gauge() sets statewright_<name> to the latest value, negative values included."""
    metrics = PrometheusMetrics()
    metrics.gauge("task.memory_change", 8192, {"task": "w.a"})
    metrics.gauge("task.memory_change", -4096, {"task": "w.a"})

    lines = exposition(metrics.registry)
    assert "# TYPE statewright_task_memory_change gauge" in lines
    assert 'statewright_task_memory_change{task="w.a"} -4096.0' in lines


def test_prometheus_untagged_metrics_and_given_registry() -> None:
    """Metrics without tags have no labels; a registry passed in is the one used."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    assert metrics.registry is registry
    metrics.incr("outbox.sent", 5)
    metrics.timing("outbox.lag", 40)

    lines = exposition(registry)
    assert "statewright_outbox_sent_total 5.0" in lines
    assert "statewright_outbox_lag_seconds_count 1.0" in lines
    assert "statewright_outbox_lag_seconds_sum 0.04" in lines


def test_prometheus_custom_namespace() -> None:
    """The namespace given to the backend replaces 'statewright'."""
    metrics = PrometheusMetrics(namespace="acme")
    metrics.incr("step.failed", tags={"reason": "timeout"})
    assert 'acme_step_failed_total{reason="timeout"} 1.0' in exposition(metrics.registry)


def test_prometheus_scraped_over_http() -> None:
    """A real /metrics endpoint serving the registry shows the recorded samples."""
    metrics = PrometheusMetrics()
    metrics.incr("step.completed", tags={"workflow": "w", "state": "a"})
    metrics.gauge("task.memory_change", 4096, {"task": "w.a"})

    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    lines = body.splitlines()
    assert 'statewright_step_completed_total{state="a",workflow="w"} 1.0' in lines
    assert 'statewright_task_memory_change{task="w.a"} 4096.0' in lines
    assert not thread.is_alive()


# -- what an engine emits -----------------------------------------------------------


def test_engine_run_emits_step_and_task_metrics(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A run through the harness records step and task figures tagged by workflow, state, task."""
    run = engine.start("pipeline")
    assert harness.run(run.id).status == "succeeded"

    for state in ("fetching", "transforming", "storing"):
        task = f"pipeline.{state}"
        assert metrics.total("step.completed", workflow="pipeline", state=state) == 1

        [step_duration] = metrics.find("step.duration", workflow="pipeline", state=state)
        assert step_duration.kind == "timing"
        assert step_duration.value >= 0

        [task_duration] = metrics.find("task.duration", task=task)
        assert task_duration.kind == "timing"
        assert task_duration.tags == {"task": task, "status": "ok"}
        assert task_duration.value >= step_duration.value  # the task wraps the step

        [memory] = metrics.find("task.memory_change", task=task)
        assert memory.kind == "gauge"
        assert memory.tags == {"task": task}
        assert isinstance(memory.value, int)  # bytes, may be zero or negative

        [queued] = metrics.find("task.queue_time", task=task)
        assert queued.kind == "timing"
        assert queued.tags == {"task": task}
        assert 0 <= queued.value < 60_000


def test_engine_run_with_retries_counts_each_attempt(
    engine: Engine, harness: WorkflowHarness, metrics: InMemoryMetrics
) -> None:
    """A retried step records one task sample per attempt and one completion."""
    run = engine.start("pipeline", {"fail": {"transforming": 2}})
    assert harness.run(run.id).status == "succeeded"

    assert metrics.total("step.retried", workflow="pipeline", state="transforming") == 2
    assert metrics.total("step.completed", workflow="pipeline", state="transforming") == 1
    assert len(metrics.find("task.duration", task="pipeline.transforming")) == 3
    assert len(metrics.find("task.memory_change", task="pipeline.transforming")) == 3
    assert len(metrics.find("task.queue_time", task="pipeline.transforming")) == 3
