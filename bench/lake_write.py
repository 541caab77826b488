"""Lake throughput: ``Lake.write`` and ``Lake.read`` of 10 M points x scale.

1000 series of minutely points (10 000 minutes, about one week at scale 1), written in the
order a file connector produces them (all series of one minute together), then read back for
the whole week with de-duplication. The ingest path (parse + write) must reach 2 M points/s,
so the write alone aims at 4 M points/s. Each figure is the best of a few runs (the machine
may be shared); the detail column lists every run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from bench import Result
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE
from sparkhu.storage.lake import Lake

N_SERIES = 1000
START = datetime(2024, 1, 1, tzinfo=UTC)
RUNS = 3
TARGET = 2_000_000


def make_points(n_minutes: int, n_series: int = N_SERIES, seed: int = 7) -> pa.Table:
    """``n_series`` series x ``n_minutes`` minutely points, all series of one minute together."""
    start_us = int(START.timestamp()) * 1_000_000
    minutes = np.arange(n_minutes, dtype=np.int64)
    ts = np.repeat(start_us + minutes * 60_000_000, n_series)
    idx = np.tile(np.arange(n_series, dtype=np.int32), n_minutes)
    names = pa.array([f"bench/meter{i:04d}/P" for i in range(n_series)], pa.string())
    ids = pa.DictionaryArray.from_arrays(pa.array(idx), names).cast(SERIES_ID_TYPE)
    values = np.random.default_rng(seed).normal(1000.0, 50.0, size=len(ts))
    ts_arr = pa.array(ts).cast(POINT_SCHEMA.field("ts").type)
    return pa.Table.from_arrays([ids, ts_arr, pa.array(values)], schema=POINT_SCHEMA)


def _timed(step: Callable[[int], object]) -> list[float]:
    seconds = []
    for i in range(RUNS):
        t0 = time.perf_counter()
        step(i)
        seconds.append(time.perf_counter() - t0)
    return seconds


def _result(metric: str, n: int, seconds: list[float], what: str) -> Result:
    rate = n / min(seconds)
    runs = ", ".join(f"{s:.2f}s" for s in seconds)
    return Result(
        "lake", metric, rate, "points/s", f">= {TARGET:,}", rate >= TARGET, f"{n:,} points, {what}; {runs}"
    )


def run(scale: float) -> list[Result]:
    """Measure write and read points/s of the lake on this machine."""
    n_minutes = max(1, round(10_000 * scale))
    table = make_points(n_minutes)
    n = table.num_rows
    end = START + timedelta(minutes=n_minutes)
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-lake-") as root:
        daily, hourly = Lake(f"{root}/daily"), Lake(f"{root}/hourly", layout="hourly")
        files: dict[str, int] = {}

        def write_daily(i: int) -> None:
            files["daily"] = len(daily.write("raw", f"bench{i}", table))

        def write_hourly(i: int) -> None:
            files["hourly"] = len(hourly.write("raw", f"bench{i}", table))

        def read(i: int) -> None:
            got = daily.read("raw", "bench0", start=START, end=end)
            if got.num_rows != n:
                raise RuntimeError(f"read {got.num_rows:,} points, wrote {n:,}")

        write_s, hourly_s, read_s = _timed(write_daily), _timed(write_hourly), _timed(read)
    return [
        _result("write (date layout)", n, write_s, f"{files['daily']} files (lake goal >= 4,000,000)"),
        _result("write (hourly layout)", n, hourly_s, f"{files['hourly']} files"),
        _result("read (one week, dedup)", n, read_s, "sorted by series_id, ts"),
    ]
