"""The gateway's Prometheus metrics, on a ``prometheus_client`` registry of its own.

Each :class:`Metrics` owns one :class:`~prometheus_client.CollectorRegistry` (never the
library's global default), so two apps in one process, or two tests, never share a figure.
It counts requests and records their latency per route template, tracks open WebSockets,
and holds gauges that other parts set (``points_ingested``) or that are read when scraped
(callbacks, exposed by a custom collector: no background thread keeps them fresh).
:meth:`Metrics.render` writes the Prometheus text exposition format (version 0.0.4); as
prometheus_client does by default, counters and histograms also carry a ``_created`` series
(when each labelled series was first seen).

>>> from prometheus_client.parser import text_string_to_metric_families
>>> m = Metrics()
>>> m.observe_request("/api/series", "GET", 200, 0.003)
>>> m.set_gauge("points_ingested", 1200, "Points written to the lake.")
>>> text = m.render()
>>> 'sparkhu_http_requests_total{method="GET",route="/api/series",status="200"} 1.0' in text
True
>>> [(s.name, s.value) for f in text_string_to_metric_families(text) for s in f.samples
...  if s.name == "sparkhu_points_ingested"]
[('sparkhu_points_ingested', 1200.0)]
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.validation import METRIC_LABEL_NAME_RE, METRIC_NAME_RE

from sparkhu.gateway.errors import MetricsError

log = logging.getLogger(__name__)
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Metrics:
    """Request counters, latency histograms and gauges on a registry of their own; thread-safe.

    ``registry`` is open to other components that bring their own collectors.

    >>> m = Metrics(namespace="demo")
    >>> m.gauge_callback("answer", "Read when scraped.", lambda: 42)
    >>> "demo_answer 42.0" in m.render(), Metrics().registry is not m.registry
    (True, True)
    """

    def __init__(self, *, namespace: str = "sparkhu", buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.namespace = namespace
        self.buckets = tuple(sorted(buckets))
        self.registry = CollectorRegistry()
        # Guards the name → gauge maps below; the prometheus_client metrics lock themselves.
        self._lock = threading.Lock()
        self._gauges: dict[str, tuple[Gauge, tuple[str, ...]]] = {}
        self._callbacks: dict[str, _CallbackGauge] = {}
        self._requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status.",
            ("route", "method", "status"),
            namespace=namespace,
            registry=self.registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Request latency by route template.",
            ("route",),
            namespace=namespace,
            registry=self.registry,
            buckets=self.buckets,
        )
        self._websockets = Gauge(
            "websocket_connections",
            "Open WebSocket connections.",
            namespace=namespace,
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request and record its latency under its route template."""
        self._requests.labels(route=route, method=method, status=str(status)).inc()
        self._latency.labels(route=route).observe(seconds)

    def track_websocket(self) -> contextlib.AbstractContextManager[None]:
        """A context that counts one open WebSocket in ``<namespace>_websocket_connections``."""
        return self._websockets.track_inprogress()

    def set_gauge(
        self, name: str, value: float, help: str = "", labels: Mapping[str, str] | None = None
    ) -> None:
        """Set gauge ``<namespace>_<name>`` (optionally one labelled sample of it).

        A gauge keeps the label names of its first ``set_gauge``; other names raise
        :class:`~sparkhu.gateway.errors.MetricsError`.
        """
        given = dict(labels or {})
        label_names = tuple(sorted(given))
        with self._lock:
            known = self._gauges.get(name)
            if known is None:
                with self._naming_errors(name, label_names):
                    gauge = Gauge(
                        name, help or name, label_names, namespace=self.namespace, registry=self.registry
                    )
                known = self._gauges[name] = (gauge, label_names)
        gauge, expected = known
        if label_names != expected:
            raise MetricsError(
                f"gauge {self._full(name)} has labels {list(expected)};"
                f" it cannot be set with {list(label_names)}"
            )
        (gauge.labels(**given) if given else gauge).set(value)

    def gauge_callback(self, name: str, help: str, read: Callable[[], float]) -> None:
        """Register a gauge whose value ``read()`` returns at scrape time (replacing an earlier one).

        A ``read`` that raises is logged and reported as NaN, so one broken figure never
        breaks the scrape.
        """
        collector = _CallbackGauge(self._full(name), help, read)
        with self._lock:
            previous = self._callbacks.pop(name, None)
            if previous is not None:
                self.registry.unregister(previous)
            with self._naming_errors(name):
                self.registry.register(collector)
            self._callbacks[name] = collector

    def render(self) -> str:
        """The registry in Prometheus text format (version 0.0.4)."""
        return generate_latest(self.registry).decode("utf-8")

    def _full(self, name: str) -> str:
        return f"{self.namespace}_{name}"

    @contextlib.contextmanager
    def _naming_errors(self, name: str, label_names: tuple[str, ...] = ()) -> Iterator[None]:
        # prometheus_client accepts any UTF-8 name and rewrites it when exposed: refuse names
        # the 0.0.4 text format cannot carry verbatim, so a gauge is scraped under its own name.
        full = self._full(name)
        if not METRIC_NAME_RE.fullmatch(full):
            raise MetricsError(f"gauge {full}: not a Prometheus metric name (letters, digits, _ and :)")
        for label in label_names:
            if not METRIC_LABEL_NAME_RE.fullmatch(label):
                raise MetricsError(f"gauge {full}: label {label!r} is not a Prometheus label name")
        # It reports a clash with a registered name as ValueError: name the gauge instead.
        try:
            yield
        except ValueError as exc:
            raise MetricsError(f"gauge {self._full(name)} cannot be registered: {exc}") from exc


class _CallbackGauge:
    """A custom collector: one unlabelled gauge whose value is read at scrape time."""

    def __init__(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.name = name
        self.help = help
        self.read = read

    def describe(self) -> list[Metric]:
        """The family without samples, so the registry knows the name without calling ``read``."""
        return [GaugeMetricFamily(self.name, self.help)]

    def collect(self) -> list[Metric]:
        """The gauge with the value ``read()`` returns now."""
        try:
            value = float(self.read())
        except Exception:  # a broken gauge must not break the scrape: log it, report NaN
            log.warning("gauge %s could not be read", self.name, exc_info=True)
            value = math.nan
        return [GaugeMetricFamily(self.name, self.help, value=value)]
