"""Metrics: one small interface, with statsd, Prometheus and in-memory backends.

Names are dotted and unprefixed in code (``step.duration``); each backend adds the
``statewright`` prefix in its own convention. Tags are low-cardinality labels
(workflow, state, task, reason): never run ids.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = structlog.get_logger("statewright.metrics")

Tags = Mapping[str, str]
Kind = Literal["count", "timing", "gauge"]


class Metrics(Protocol):
    """Where figures go."""

    def incr(self, name: str, value: float = 1, tags: Tags | None = None) -> None: ...

    def timing(self, name: str, milliseconds: float, tags: Tags | None = None) -> None: ...

    def gauge(self, name: str, value: float, tags: Tags | None = None) -> None: ...


class NullMetrics:
    """Discards everything."""

    def incr(self, name: str, value: float = 1, tags: Tags | None = None) -> None:
        pass

    def timing(self, name: str, milliseconds: float, tags: Tags | None = None) -> None:
        pass

    def gauge(self, name: str, value: float, tags: Tags | None = None) -> None:
        pass


class FanoutMetrics:
    """Sends every sample to several backends (statsd and Prometheus, say)."""

    def __init__(self, *backends: Metrics) -> None:
        self.backends = backends

    def incr(self, name: str, value: float = 1, tags: Tags | None = None) -> None:
        for backend in self.backends:
            backend.incr(name, value, tags)

    def timing(self, name: str, milliseconds: float, tags: Tags | None = None) -> None:
        for backend in self.backends:
            backend.timing(name, milliseconds, tags)

    def gauge(self, name: str, value: float, tags: Tags | None = None) -> None:
        for backend in self.backends:
            backend.gauge(name, value, tags)


@dataclass(frozen=True, slots=True)
class Sample:
    kind: Kind
    name: str
    value: float
    tags: Mapping[str, str]


@dataclass
class InMemoryMetrics:
    """Keeps every sample, for tests to assert on."""

    samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _add(self, kind: Kind, name: str, value: float, tags: Tags | None) -> None:
        with self._lock:
            self.samples.append(Sample(kind, name, value, dict(tags or {})))

    def incr(self, name: str, value: float = 1, tags: Tags | None = None) -> None:
        self._add("count", name, value, tags)

    def timing(self, name: str, milliseconds: float, tags: Tags | None = None) -> None:
        self._add("timing", name, milliseconds, tags)

    def gauge(self, name: str, value: float, tags: Tags | None = None) -> None:
        self._add("gauge", name, value, tags)

    def find(self, name: str, **tags: str) -> list[Sample]:
        """Samples named ``name`` whose tags include ``tags``."""
        with self._lock:
            return [
                s
                for s in self.samples
                if s.name == name and all(s.tags.get(k) == v for k, v in tags.items())
            ]

    def total(self, name: str, **tags: str) -> float:
        return sum(s.value for s in self.find(name, **tags))


class StatsdMetrics:
    """DogStatsD lines over UDP (plain statsd servers ignore the ``|#tags`` part)."""

    def __init__(self, host: str, port: int, prefix: str = "statewright") -> None:
        self._address = (host, port)
        self._prefix = prefix
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def _send(self, name: str, value: float, kind: str, tags: Tags | None) -> None:
        number = str(int(value)) if float(value).is_integer() else repr(float(value))
        line = f"{self._prefix}.{name}:{number}|{kind}"
        if tags:
            line += "|#" + ",".join(f"{k}:{_tag(v)}" for k, v in sorted(tags.items()))
        with contextlib.suppress(OSError):  # metrics never break the work they measure
            self._socket.sendto(line.encode(), self._address)

    def incr(self, name: str, value: float = 1, tags: Tags | None = None) -> None:
        self._send(name, value, "c", tags)

    def timing(self, name: str, milliseconds: float, tags: Tags | None = None) -> None:
        self._send(name, milliseconds, "ms", tags)

    def gauge(self, name: str, value: float, tags: Tags | None = None) -> None:
        self._send(name, value, "g", tags)


_TAG_UNSAFE = str.maketrans(",|:#", "____")


def _tag(value: str) -> str:
    """A tag value without the characters that delimit DogStatsD fields."""
    return str(value).translate(_TAG_UNSAFE)


class PrometheusMetrics:
    """Counters, histograms (seconds) and gauges in a Prometheus registry.

    A metric's label names are fixed by its first use; later samples must carry the
    same tag keys.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, namespace: str = "statewright"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._namespace = namespace
        self._metrics: dict[tuple[str, str], Counter | Histogram | Gauge] = {}
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()

    def _get(self, kind: str, name: str, labels: tuple[str, ...]) -> Counter | Histogram | Gauge:
        key = (kind, name)
        with self._lock:
            metric = self._metrics.get(key)
            if metric is None:
                full = name.replace(".", "_")
                doc = f"statewright {name}"
                if kind == "count":
                    metric = Counter(
                        full, doc, labels, namespace=self._namespace, registry=self.registry
                    )
                elif kind == "timing":
                    metric = Histogram(
                        f"{full}_seconds",
                        doc,
                        labels,
                        namespace=self._namespace,
                        registry=self.registry,
                    )
                else:
                    metric = Gauge(
                        full, doc, labels, namespace=self._namespace, registry=self.registry
                    )
                self._metrics[key] = metric
            return metric

    def _labelled(self, kind: str, name: str, tags: Tags | None) -> Counter | Histogram | Gauge:
        tags = tags or {}
        metric = self._get(kind, name, tuple(sorted(tags)))
        return metric.labels(**tags) if tags else metric

    def incr(self, name: str, value: float = 1, tags: Tags | None = None) -> None:
        counter = self._safely("count", name, tags)
        if isinstance(counter, Counter):
            counter.inc(value)

    def timing(self, name: str, milliseconds: float, tags: Tags | None = None) -> None:
        histogram = self._safely("timing", name, tags)
        if isinstance(histogram, Histogram):
            histogram.observe(milliseconds / 1000)

    def gauge(self, name: str, value: float, tags: Tags | None = None) -> None:
        gauge = self._safely("gauge", name, tags)
        if isinstance(gauge, Gauge):
            gauge.set(value)

    def _safely(self, kind: str, name: str, tags: Tags | None) -> object:
        """The labelled metric, or ``None`` (logged once) when the sample does not fit it."""
        try:
            return self._labelled(kind, name, tags)
        except ValueError as error:  # other label names, or a name used for two kinds
            if (kind, name) not in self._warned:
                self._warned.add((kind, name))
                log.warning("metric sample dropped", metric=name, error=str(error))
            return None
