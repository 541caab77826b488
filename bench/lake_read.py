"""Lake reads beside the same DuckDB query written by hand.

A lake of 1,000 series of minutely points over 8 days (about 11.5 M points x scale, one file per
day partition as the ingest writes them) plus a re-delivered hour of every series (a second file
in two partitions: duplicates that a read must resolve to the newest value). Two reads, each
de-duplicated and ordered by (series_id, ts):

* **one series x one week** — ``Lake.read(series=[s], start, end)``;
* **many series x one day** — 100 series over one day.

The peer is what a user of DuckDB would write over the same files: ``read_parquet`` of the
dataset's glob with hive partitioning, the date partitions and the time range in ``WHERE``, the
series filter, ``QUALIFY row_number() OVER (PARTITION BY series_id, ts ORDER BY filename DESC) = 1``
and ``ORDER BY series_id, ts`` (one connection, reused). Interleaved A/B/B/A, medians of many
calls; both results are checked equal first.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from bench import Result, interleaved
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE
from sparkhu.storage.lake import Lake

N_SERIES = 1000
DAYS = 8
START = datetime(2024, 1, 1, tzinfo=UTC)
CALLS = 5
TARGET_RATIO = 1.2


def _day(day: int, n_series: int, minutes: int = 1440, first_minute: int = 0, seed: int = 0) -> pa.Table:
    start_us = int((START + timedelta(days=day)).timestamp()) * 1_000_000
    ts = np.repeat(start_us + (first_minute + np.arange(minutes, dtype=np.int64)) * 60_000_000, n_series)
    idx = np.tile(np.arange(n_series, dtype=np.int32), minutes)
    names = pa.array([f"bench/meter{i:04d}/P" for i in range(n_series)], pa.string())
    ids = pa.DictionaryArray.from_arrays(pa.array(idx), names).cast(SERIES_ID_TYPE)
    values = np.random.default_rng(seed + day).normal(1000.0, 50.0, size=len(ts)).round(3)
    return pa.Table.from_arrays(
        [ids, pa.array(ts).cast(POINT_SCHEMA.field("ts").type), pa.array(values)], schema=POINT_SCHEMA
    )


def build(root: str, n_series: int) -> Lake:
    """The bench's lake: one file per day, then a re-delivered hour across two days."""
    lake = Lake(root)
    for day in range(DAYS):
        lake.write("raw", "meters", _day(day, n_series))
    lake.write("raw", "meters", _day(3, n_series, minutes=60, first_minute=1410, seed=99))  # 23:30 → 00:30
    return lake


def hand_query(
    con: duckdb.DuckDBPyConnection, root: str, series: list[str], start: datetime, end: datetime
) -> pa.Table:
    """The peer: the read a DuckDB user writes over the dataset's files."""
    days = [(start + timedelta(days=d)).date().isoformat() for d in range((end - start).days + 1)]
    sql = (
        f"SELECT series_id, ts, value FROM read_parquet('{root}/raw/meters/*/*.parquet', "
        "hive_partitioning = true, filename = true) "
        "WHERE date IN (SELECT unnest($days::DATE[])) AND ts >= $start AND ts < $end "
        "AND series_id IN (SELECT unnest($series)) "
        "QUALIFY row_number() OVER (PARTITION BY series_id, ts ORDER BY filename DESC) = 1 "
        "ORDER BY series_id, ts"
    )
    params: dict[str, Any] = {"days": days, "start": start, "end": end, "series": series}
    return con.sql(sql, params=params).to_arrow_table()


def _calls(work: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(CALLS):
            work()

    return run


def run(scale: float) -> list[Result]:
    n_series = max(10, round(N_SERIES * scale))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-read-") as root:
        lake = build(root, n_series)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        names = [f"bench/meter{i:04d}/P" for i in range(n_series)]
        cases = {
            "one series x one week": (names[n_series // 2 : n_series // 2 + 1], START + timedelta(days=1), 7),
            "many series x one day": (names[:: max(1, n_series // 100)], START + timedelta(days=3), 1),
        }
        for label, (series, start, days) in cases.items():
            end = start + timedelta(days=days)

            def ours(series: list[str] = series, start: datetime = start, end: datetime = end) -> pa.Table:
                return lake.read("raw", "meters", series=series, start=start, end=end)

            def peer(series: list[str] = series, start: datetime = start, end: datetime = end) -> pa.Table:
                return hand_query(con, root, series, start, end)

            got, want = ours(), peer()
            same = got.num_rows == want.num_rows and got.column("value").combine_chunks().equals(
                want.column("value").combine_chunks()
            )
            ours_s, peer_s = interleaved(_calls(ours), _calls(peer))
            ratio = peer_s / ours_s
            rows = got.num_rows
            results.append(
                Result(
                    "read",
                    f"{label} (dedup)",
                    ours_s / CALLS * 1000,
                    "ms",
                    target=f"ratio >= {TARGET_RATIO}",
                    met=ratio >= TARGET_RATIO and same,
                    peer="DuckDB query by hand",
                    ratio=ratio,
                    detail=(
                        f"{rows:,} points of {len(series)} series from "
                        f"{len(lake.files('raw', 'meters', start=start, end=end))} files; "
                        f"DuckDB {peer_s / CALLS * 1000:.1f} ms; results {'equal' if same else 'DIFFER'}"
                    ),
                )
            )
        con.close()
    return results


def main() -> None:
    """``python -m bench.lake_read``: print the figures at scale 1."""
    started = time.perf_counter()
    for result in run(1.0):
        print(result)
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
