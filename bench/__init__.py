"""Benchmarks: ``make bench`` (``python -m bench [NAME ...]``) runs them and prints one table.

Each module ``bench/<name>.py`` defines ``run(scale: float) -> list[Result]``; register it in
:data:`BENCHES`. Benchmarks are measurements, not tests: they print, they do not assert.
"""

from __future__ import annotations

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


# name -> module path; each module has run(scale) -> list[Result]
BENCHES: dict[str, str] = {
    "lake": "bench.lake_write",
    "bus": "bench.bus_to_lake",
    "online": "bench.online_latency",
    "gateway": "bench.gateway_query",
    "files": "bench.file_to_lake",
    "predictions": "bench.predictions_write",
    "pipeline": "bench.pipeline_dag",
    "kafka": "bench.kafka_to_lake",
    "lstm": "bench.lstm_train",
    "spark": "bench.spark_engine",
    "portfolio": "bench.forecast_portfolio",
    "lstm_ddp": "bench.lstm_distributed",
}
