"""A small Prometheus registry owned by the gateway's services (no global registry).

It counts requests and records their latency per route template, and holds gauges that
other parts set (``points_ingested``) or that are computed when scraped (callbacks).
:meth:`Metrics.render` writes the Prometheus text exposition format (version 0.0.4).

>>> m = Metrics()
>>> m.observe_request("/api/series", "GET", 200, 0.003)
>>> m.set_gauge("points_ingested", 1200, "Points written to the lake.")
>>> text = m.render()
>>> 'sparkhu_http_requests_total{route="/api/series",method="GET",status="200"} 1' in text
True
>>> "sparkhu_points_ingested 1200" in text
True
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _Histogram:
    counts: list[int]
    total: float = 0.0
    n: int = 0


@dataclass
class _Gauge:
    help: str
    values: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)
    callback: Callable[[], float] | None = None


class Metrics:
    """Request counters, latency histograms and gauges; thread-safe."""

    def __init__(self, *, namespace: str = "sparkhu", buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.namespace = namespace
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._gauges: dict[str, _Gauge] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request and record its latency under its route template."""
        with self._lock:
            key = (route, method, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.get(route)
            if hist is None:
                hist = self._latency[route] = _Histogram([0] * len(self.buckets))
            index = bisect.bisect_left(self.buckets, seconds)
            if index < len(hist.counts):
                hist.counts[index] += 1
            hist.total += seconds
            hist.n += 1

    def set_gauge(
        self, name: str, value: float, help: str = "", labels: Mapping[str, str] | None = None
    ) -> None:
        """Set gauge ``<namespace>_<name>`` (optionally one labelled sample of it)."""
        with self._lock:
            gauge = self._gauges.setdefault(name, _Gauge(help or name))
            gauge.values[tuple(sorted((labels or {}).items()))] = float(value)

    def gauge_callback(self, name: str, help: str, read: Callable[[], float]) -> None:
        """Register a gauge whose value ``read()`` returns at scrape time."""
        with self._lock:
            self._gauges[name] = _Gauge(help, callback=read)

    def render(self) -> str:
        """The registry in Prometheus text format."""
        ns = self.namespace
        lines = [
            f"# HELP {ns}_http_requests_total HTTP requests by route template, method and status.",
            f"# TYPE {ns}_http_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((route, _copy(h)) for route, h in self._latency.items())
            gauges = sorted(self._gauges.items())
        for (route, method, status), count in requests:
            labels = _labels({"route": route, "method": method, "status": status})
            lines.append(f"{ns}_http_requests_total{labels} {count}")
        name = f"{ns}_http_request_duration_seconds"
        lines += [f"# HELP {name} Request latency by route template.", f"# TYPE {name} histogram"]
        for route, hist in latency:
            cumulative = 0
            for bound, count in zip(self.buckets, hist.counts, strict=True):
                cumulative += count
                lines.append(f"{name}_bucket{_labels({'route': route, 'le': _num(bound)})} {cumulative}")
            lines.append(f"{name}_bucket{_labels({'route': route, 'le': '+Inf'})} {hist.n}")
            lines.append(f"{name}_sum{_labels({'route': route})} {_num(hist.total)}")
            lines.append(f"{name}_count{_labels({'route': route})} {hist.n}")
        for gname, gauge in gauges:
            full = f"{ns}_{gname}"
            lines += [f"# HELP {full} {_escape_help(gauge.help)}", f"# TYPE {full} gauge"]
            if gauge.callback is not None:
                lines.append(f"{full} {_num(_read(full, gauge.callback))}")
                continue
            for label_items, value in sorted(gauge.values.items()):
                lines.append(f"{full}{_labels(dict(label_items))} {_num(value)}")
        return "\n".join(lines) + "\n"


def _copy(hist: _Histogram) -> _Histogram:
    return _Histogram(list(hist.counts), hist.total, hist.n)


def _read(name: str, callback: Callable[[], float]) -> float:
    try:
        return float(callback())
    except Exception:  # a broken gauge must not break the scrape: log it, report NaN
        log.warning("gauge %s could not be read", name, exc_info=True)
        return math.nan


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{key}="{_escape_label(str(value))}"' for key, value in labels.items())
    return "{" + body + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
