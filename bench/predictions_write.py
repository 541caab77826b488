"""Prediction store: forecasts written and blended per second on SQLite.

Each batch holds one 20-step forecast for each of 100 series from one origin; origins
advance by one period, so every target is forecast up to 20 times and blended each time
(the online learner's pattern). Also measured: re-writing batches already stored (a no-op).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import Result
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import FORECAST_SCHEMA, PredictionStore

SERIES = 100
STEPS = 20
PERIOD_US = 60_000_000
TARGET = 20_000.0


def batch(origin_index: int, series: int = SERIES, steps: int = STEPS) -> pa.Table:
    """One forecast of ``steps`` steps per series from origin ``origin_index`` periods after t0."""
    t0 = 1_700_000_000_000_000
    origin = t0 + origin_index * PERIOD_US
    step = np.tile(np.arange(1, steps + 1, dtype=np.int32), series)
    ids = np.repeat([f"bench/meter/m{i:03d}" for i in range(series)], steps)
    rng = np.random.default_rng(origin_index)
    value = rng.normal(100.0, 10.0, series * steps)
    return pa.table(
        {
            "series_id": ids,
            "origin_ts": pa.array(np.full(series * steps, origin)).cast(
                FORECAST_SCHEMA.field("origin_ts").type
            ),
            "target_ts": pa.array(origin + step.astype(np.int64) * PERIOD_US).cast(
                FORECAST_SCHEMA.field("target_ts").type
            ),
            "step": step,
            "value": value,
            "lower": value - 5.0,
            "upper": value + 5.0,
            "model": np.full(series * steps, "ses"),
        },
        schema=FORECAST_SCHEMA,
    )


def run(scale: float) -> list[Result]:
    batches = max(5, int(60 * scale))
    tables = [batch(i) for i in range(batches)]
    rows = sum(t.num_rows for t in tables)
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-predictions-") as tmp:
        with Catalog(f"sqlite:///{Path(tmp) / 'catalog.db'}") as catalog:
            store = PredictionStore(catalog.engine)
            start = time.perf_counter()
            for table in tables:
                store.write(table)
            elapsed = time.perf_counter() - start
            again = tables[-10:]
            start = time.perf_counter()
            for table in again:
                store.write(table)
            elapsed_again = time.perf_counter() - start
    rate = rows / elapsed
    detail = f"{batches} batches x {SERIES} series x {STEPS} steps, SQLite WAL"
    return [
        Result(
            "predictions",
            "forecasts written+blended",
            rate,
            "rows/s",
            f">= {TARGET:,.0f}",
            rate >= TARGET,
            detail,
        ),
        Result(
            "predictions",
            "re-written (ignored)",
            sum(t.num_rows for t in again) / elapsed_again,
            "rows/s",
            detail="same batches again: no new rows, no blending",
        ),
    ]
