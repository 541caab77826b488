"""Benchmarks: ``make bench`` (``python -m bench [NAME ...]``) runs them and prints one table.

Each module ``bench/<name>.py`` defines ``run(scale: float) -> list[Result]``; register it in
:data:`BENCHES`. Benchmarks are measurements, not tests: they print, they do not assert.

A figure that a user would compare with another tool names that tool as its ``peer`` and
carries ``ratio`` = sparkhu's speed / the peer's speed (> 1 means sparkhu is faster), both
measured in the same run with :func:`interleaved` (A/B/B/A rounds, medians), because these
machines are shared and noisy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    """One measured figure with the issue's target."""

    bench: str
    metric: str
    value: float
    unit: str
    target: str = ""
    """Human-readable target, e.g. ``>= 2,000,000``."""
    met: bool | None = None
    detail: str = ""
    peer: str = ""
    """What a user would otherwise pick for the same work, measured in the same run."""
    ratio: float | None = None
    """sparkhu's speed over the peer's (> 1: sparkhu is faster)."""


def interleaved(
    ours: Callable[[], object], peer: Callable[[], object], rounds: int = 2
) -> tuple[float, float]:
    """Median wall seconds of ``ours`` and ``peer``, run A/B/B/A ``rounds`` times.

    Interleaving spreads the machine's noise over both sides; the ratio of the medians is the
    figure that counts.

    >>> ours_s, peer_s = interleaved(lambda: sum(range(1000)), lambda: sum(range(1000)), rounds=1)
    >>> ours_s > 0 and peer_s > 0
    True
    """
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    order = [("ours", ours), ("peer", peer), ("peer", peer), ("ours", ours)]
    for _ in range(rounds):
        for side, work in order:
            started = time.perf_counter()
            work()
            times[side].append(time.perf_counter() - started)
    return statistics.median(times["ours"]), statistics.median(times["peer"])


def interleaved_all(sides: dict[str, Callable[[], object]], rounds: int = 1) -> dict[str, float]:
    """Median wall seconds of each of ``sides``, run in order then in reverse (A/B/C/C/B/A) ``rounds`` times.

    :func:`interleaved` for more than one peer.

    >>> seconds = interleaved_all({"a": lambda: None, "b": lambda: None})
    >>> sorted(seconds), all(s >= 0 for s in seconds.values())
    (['a', 'b'], True)
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    order = [*sides, *reversed(sides)]
    for _ in range(rounds):
        for name in order:
            started = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(spent) for name, spent in times.items()}


# name -> module path; each module has run(scale) -> list[Result]
BENCHES: dict[str, str] = {
    "lake": "bench.lake_write",
    "bus": "bench.bus_to_lake",
    "online": "bench.online_latency",
    "online_update": "bench.online_update",
    "gateway": "bench.gateway_query",
    "gateway_load": "bench.gateway_load",
    "files": "bench.file_to_lake",
    "read": "bench.lake_read",
    "predictions": "bench.predictions_write",
    "pipeline": "bench.pipeline_dag",
    "kafka": "bench.kafka_to_lake",
    "lstm": "bench.lstm_train",
    "spark": "bench.spark_engine",
    "portfolio": "bench.forecast_portfolio",
    "lstm_ddp": "bench.lstm_distributed",
    "retention": "bench.retention",
    "counts": "bench.exact_counts",
    "airflow": "bench.airflow_dags",
    "spark_study": "bench.spark_study",
    "metadata": "bench.metadata",
    "cli_startup": "bench.cli_startup",
    "connectors": "bench.connectors",
    "dashboard": "bench.dashboard",
    "drift": "bench.drift",
}
