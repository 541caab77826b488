"""The full daily DAG over 1,000 series x 10,080 minutely points (one week) with the local engine.

The data: per series a daily season (sine of random amplitude and phase) over a level, with
Gaussian noise, a few gaps (runs of missing minutes) and a few spikes, generated with numpy
and written to the raw zone; the series are registered in the catalog (unit, range). The DAG
runs as one back-fill batch over the week (``days_per_run=7``). The 12 per-series tasks run
chained (each chunk of series goes to a worker once and passes through every task there), so
a task's row gives its CPU seconds summed over the workers plus the seconds its writes took
(on writer threads, overlapping the next stage), and its input rows/s; the total is the wall
time of the whole run (target <= 60 s on the 2-core machine).

The runner's own overhead is measured with three cheap toy tasks (copy, scale, daily mean)
over the same points: reading, grouping, mapping, assembling, writing and recording.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa

from bench import Result
from sparkhu.engine.local import LocalEngine
from sparkhu.pipeline import examples
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.dag import Dag
from sparkhu.pipeline.daily import daily_dag
from sparkhu.pipeline.datasets import Datasets
from sparkhu.pipeline.reports import ReportWriter
from sparkhu.pipeline.runner import PipelineRunner
from sparkhu.pipeline.runs import RunSummary
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake

N_SERIES = 1000
DAYS = 7
START = datetime(2024, 1, 1, tzinfo=UTC)
TARGET_S = 60.0
DATASET = "bench_power"


def make_week(n_series: int, n_minutes: int, seed: int = 11) -> pa.Table:
    """Series-major minutely points with daily seasons, noise, gaps (dropped) and spikes."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(n_minutes, dtype=np.int64)
    amp = rng.uniform(50, 500, n_series)[:, None]
    phase = rng.uniform(0, 2 * np.pi, n_series)[:, None]
    level = rng.uniform(500, 2000, n_series)[:, None]
    values = (
        level + amp * np.sin(2 * np.pi * minutes / 1440 + phase) + rng.normal(0, 20, (n_series, n_minutes))
    )
    spikes = rng.integers(0, n_minutes, (n_series, 5))
    np.put_along_axis(values, spikes, np.take_along_axis(values, spikes, 1) + 10 * amp, 1)
    keep = np.ones((n_series, n_minutes), dtype=bool)
    gap_starts = rng.integers(0, n_minutes - 30, (n_series, 3))
    for k in range(30):
        np.put_along_axis(keep, np.minimum(gap_starts + k * (rng.random() < 0.5), n_minutes - 1), False, 1)
    start_us = int(START.timestamp()) * 1_000_000
    ts = np.broadcast_to(start_us + minutes * 60_000_000, (n_series, n_minutes))[keep]
    idx = np.broadcast_to(np.arange(n_series, dtype=np.int32)[:, None], (n_series, n_minutes))[keep]
    names = pa.array([f"bench/house{i:04d}/P" for i in range(n_series)], pa.string())
    ids = pa.DictionaryArray.from_arrays(pa.array(idx), names).cast(SERIES_ID_TYPE)
    ts_arr = pa.array(ts).cast(POINT_SCHEMA.field("ts").type)
    return pa.Table.from_arrays([ids, ts_arr, pa.array(values[keep])], schema=POINT_SCHEMA)


def _rows(bench: str, summary: RunSummary, points: int) -> list[Result]:
    out = []
    for r in summary.runs:
        rate = r.rows_in / r.seconds if r.seconds else 0.0
        detail = (
            f"{r.rows_in:,} rows in, {sum(r.rows_out.values()):,} out, {len(r.series)} series"
            f" ({r.count('skipped')} skipped, {r.count('failed')} failed), {r.status}"
        )
        if r.cpu_seconds:
            detail = (
                f"cpu {r.cpu_seconds:.1f} s in workers + write {r.seconds - r.cpu_seconds:.1f} s; " + detail
            )
        if r.error:
            detail += f": {r.error[:80]}"
        out.append(Result(bench, f"{r.task} (s)", r.seconds, f"s, {rate:,.0f} rows/s", detail=detail))
    total = summary.seconds
    out.append(
        Result(
            bench,
            "total wall",
            total,
            f"s, {points / total:,.0f} points/s",
            f"<= {TARGET_S:.0f} s" if bench == "pipeline" else "",
            total <= TARGET_S if bench == "pipeline" else None,
            f"{points:,} points, {len(summary.runs)} task-runs, {summary.status}",
        )
    )
    return out


def run(scale: float) -> list[Result]:
    """Measure the full daily DAG and the runner overhead on this machine."""
    n_series = max(2, round(N_SERIES * scale))
    table = make_week(n_series, DAYS * 1440)
    first, last = date(2024, 1, 1), date(2024, 1, DAYS)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-pipeline-") as root:
        lake = Lake(f"{root}/lake")
        lake.write("raw", DATASET, table)
        catalog = Catalog(f"sqlite:///{root}/catalog.db")
        for sid in table.column("series_id").combine_chunks().dictionary.to_pylist():
            catalog.upsert_series(SeriesInfo.of(sid, unit="W", value_min=0.0, value_max=100_000.0))
        with LocalEngine() as engine:
            toy = Dag(
                [
                    Task("copy", examples.passthrough, {"points": "raw"}, {"points": "validated"}),
                    Task("scale", examples.scale, {"points": "validated"}, {"points": "deduped"}),
                    Task("daily_mean", examples.daily_mean, {"points": "deduped"}, {"stats": "stats"}),
                ]
            )
            toy_sets = Datasets(
                lake,
                DATASET,
                {
                    "validated": ("validated", "toy", True),
                    "deduped": ("clean", "toy", True),
                    "stats": ("analysis", "toy", False),
                },
            )
            runner = PipelineRunner(
                lake, catalog, engine, toy, dataset=DATASET + "_toy", days_per_run=DAYS, datasets=toy_sets
            )
            summary = runner.run(first, last)
            results.extend(_rows("runner overhead", summary, table.num_rows))
            runner = PipelineRunner(
                lake,
                catalog,
                engine,
                daily_dag(),
                dataset=DATASET,
                days_per_run=DAYS,
                hooks=[ReportWriter(f"{root}/reports", DATASET)],
            )
            t0 = time.perf_counter()
            summary = runner.run(first, last)
            summary.seconds = time.perf_counter() - t0
            results.extend(_rows("pipeline", summary, table.num_rows))
        catalog.close()
    return results
