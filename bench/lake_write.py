"""Lake throughput: ``Lake.write`` and ``Lake.read`` of 10 M points x scale.

1000 series of minutely points (10 000 minutes, about one week at scale 1), written in the
order a file connector produces them (all series of one minute together), then read back for
the whole week with de-duplication. The write is measured beside pyarrow ``write_to_dataset``
of the same table (date partitions, zstd), the read beside the same de-duplicated read written by
hand in DuckDB over the same files; compaction of the week written twice beside DuckDB
de-duplicating it into one sorted file per day (``COPY ... PARTITION_BY``), each run on a fresh
copy; interleaved A/B/B/A, medians.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import Result, interleaved
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE
from sparkhu.storage.lake import Lake

N_SERIES = 1000
START = datetime(2024, 1, 1, tzinfo=UTC)
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


def _peer_write(table: pa.Table, out: str, hourly: bool = False) -> None:
    """The same points as date (or year/month/day/hour) partitions by pyarrow ``write_to_dataset``."""
    ts = table.column("ts")
    if hourly:
        parts = {"year": pc.year(ts), "month": pc.month(ts), "day": pc.day(ts), "hour": pc.hour(ts)}
    else:
        parts = {"date": ts.cast(pa.date32())}
    for name, column in parts.items():
        table = table.append_column(name, column)
    pq.write_to_dataset(table, out, partition_cols=list(parts), compression="zstd")


def _peer_read(con: duckdb.DuckDBPyConnection, root: str) -> pa.Table:
    """The whole dataset de-duplicated by DuckDB, as a user writes it over the same files."""
    sql = (
        f"SELECT series_id, ts, value FROM read_parquet('{root}/*/*.parquet', filename = true) "
        "QUALIFY row_number() OVER (PARTITION BY series_id, ts ORDER BY filename DESC) = 1 "
        "ORDER BY series_id, ts"
    )
    return con.sql(sql).to_arrow_table()


def _peer_compact(con: duckdb.DuckDBPyConnection, root: str, out: str) -> None:
    """The dataset de-duplicated (newest file wins) and rewritten as one sorted file per day by DuckDB."""
    con.execute(
        f"COPY (SELECT series_id, ts, value, strftime(ts, '%Y-%m-%d') AS date FROM "
        f"read_parquet('{root}/*/*.parquet', filename = true) "
        "QUALIFY row_number() OVER (PARTITION BY series_id, ts ORDER BY filename DESC) = 1 "
        f"ORDER BY series_id, ts) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))"
    )


def run(scale: float) -> list[Result]:
    """Measure write and read points/s of the lake beside pyarrow and DuckDB."""
    n_minutes = max(1, round(10_000 * scale))
    table = make_points(n_minutes)
    n = table.num_rows
    end = START + timedelta(minutes=n_minutes)
    runs = iter(range(1_000))
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-lake-") as root:
        daily, hourly = Lake(f"{root}/daily"), Lake(f"{root}/hourly", layout="hourly")
        files: dict[str, int] = {}

        def write_daily() -> None:
            files["daily"] = len(daily.write("raw", f"bench{next(runs)}", table))

        def write_hourly() -> None:
            files["hourly"] = len(hourly.write("raw", f"bench{next(runs)}", table))

        def peer_write() -> None:
            _peer_write(table, f"{root}/peer{next(runs)}")

        def peer_hourly() -> None:
            _peer_write(table, f"{root}/peer{next(runs)}", hourly=True)

        write_s, peer_write_s = interleaved(write_daily, peer_write, rounds=1)
        hourly_s, peer_hourly_s = interleaved(write_hourly, peer_hourly, rounds=1)
        first = daily.datasets("raw")[0][1]
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")

        def read() -> None:
            got = daily.read("raw", first, start=START, end=end)
            if got.num_rows != n:
                raise RuntimeError(f"read {got.num_rows:,} points, wrote {n:,}")

        read_s, peer_read_s = interleaved(
            read, lambda: _peer_read(con, f"{root}/daily/raw/{first}"), rounds=1
        )
        # compaction of the dataset written twice (every point repeated), each run on a fresh copy
        daily.write("raw", first, table)
        source = f"{root}/daily/raw/{first}"
        copies: list[str] = []
        for i in range(4):
            copies.append(f"{root}/copy{i}")
            shutil.copytree(source, f"{copies[-1]}/raw/{first}")

        def compact() -> None:
            Lake(copies.pop(0)).compact("raw", first)

        def peer_compact() -> None:
            _peer_compact(con, f"{copies.pop()}/raw/{first}", f"{root}/peer{next(runs)}")

        compact_s, peer_compact_s = interleaved(compact, peer_compact, rounds=1)
        con.close()
    return [
        _result(
            "write (date layout)",
            n,
            write_s,
            f"{files['daily']} files",
            "pyarrow write_to_dataset",
            peer_write_s,
        ),
        _result(
            "write (hourly layout)",
            n,
            hourly_s,
            f"{files['hourly']} files",
            "pyarrow write_to_dataset",
            peer_hourly_s,
        ),
        _result(
            "compact (week written twice)",
            2 * n,
            compact_s,
            "one sorted file per day",
            "DuckDB COPY PARTITION_BY (dedup)",
            peer_compact_s,
        ),
        _result(
            "read (one week, dedup)",
            n,
            read_s,
            "sorted by series_id, ts",
            "DuckDB query by hand",
            peer_read_s,
        ),
    ]


def _result(metric: str, n: int, seconds: float, what: str, peer: str, peer_s: float | None) -> Result:
    rate = n / seconds
    detail = f"{n:,} points, {what}; {seconds:.2f} s" + (f", peer {peer_s:.2f} s" if peer_s else "")
    return Result(
        "lake", metric, rate, "points/s", f">= {TARGET:,}", rate >= TARGET, detail,
        peer=peer, ratio=peer_s / seconds if peer_s else None,
    )  # fmt: skip
