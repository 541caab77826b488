"""SQLite bus → lake sink: publish 5M x scale points as Arrow batches of 50k, time the sink draining them.

Two figures: the publish rate (split by partition, zstd Arrow IPC, one durable produce) and
the sink rate (poll, decode, one lake write per 500k points, commit), both in points/s.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import Result
from sparkhu.connectors.lake_sink import LakeSink
from sparkhu.series import POINT_SCHEMA, TS_TYPE
from sparkhu.storage.lake import Lake
from sparkhu.stream.codecs import publish_points
from sparkhu.stream.sqlite import SqliteBus

NAME = "SQLite bus → lake sink"
TARGET = 1_000_000.0


def make_points(total: int, n_series: int = 100, seed: int = 0) -> pa.Table:
    """``total`` minutely points of ``n_series`` meters, time-major (as a live source emits them).

    Values are random full-precision floats, which compress worst (real meter readings of
    fixed precision take about a third of the bytes on the bus).
    """
    per_series = max(1, total // n_series)
    ids = np.tile(np.arange(n_series, dtype="int32"), per_series)
    names = pa.array([f"bench/electricity/M{i:03d}.P" for i in range(n_series)])
    ts = np.repeat(np.arange(per_series, dtype="int64") * 60_000_000 + 1_600_000_000_000_000, n_series)
    values = np.random.default_rng(seed).normal(100.0, 15.0, len(ids))  # full-precision: the worst case
    series = pa.DictionaryArray.from_arrays(pa.array(ids), names)
    return pa.Table.from_arrays([series, pa.array(ts).cast(TS_TYPE), pa.array(values)], schema=POINT_SCHEMA)


def run(scale: float) -> list[Result]:
    total = max(100_000, int(5_000_000 * scale))
    table = make_points(total)
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-bus-") as tmp:
        root = Path(tmp)
        with SqliteBus(f"sqlite:///{root / 'bus.db'}", default_partitions=4) as bus:
            started = time.perf_counter()
            messages = publish_points(bus, "raw.bench", table, max_rows=50_000)
            publish_s = time.perf_counter() - started
            with sqlite3.connect(root / "bus.db") as db:
                bus_bytes = db.execute("SELECT SUM(LENGTH(value)) FROM messages").fetchone()[0]
            lake = Lake(str(root / "lake"))
            with LakeSink(bus, lake, "raw.bench", dataset="bench", max_points=500_000) as sink:
                started = time.perf_counter()
                while sink.points_written < table.num_rows:
                    if sink.run_once(timeout=1.0) == 0:
                        break
                sink_s = time.perf_counter() - started
                written = sink.points_written
    per_point = bus_bytes / table.num_rows
    detail = f"{table.num_rows:,} points, {messages} messages, {per_point:.1f} B/point in messages"
    sink_rate = written / sink_s
    return [
        Result(
            NAME,
            "publish_points (split, encode, produce)",
            table.num_rows / publish_s,
            "points/s",
            detail=detail,
        ),
        Result(
            NAME,
            "sink drain (poll, decode, lake write, commit)",
            sink_rate,
            "points/s",
            target=">= 1,000,000",
            met=sink_rate >= TARGET and written == table.num_rows,
            detail=f"{written:,} points written in {sink_s:.2f} s",
        ),
    ]
