"""The downsample ladder: raw → 5 min → 1 h (or any widths), each bucket's min, max, mean, last, count.

Level *i* of ``dataset`` is the lake dataset ``analysis/<dataset>.ds<every_s>s`` (columns
``series_id``, ``ts`` (bucket start, UTC), ``min``, ``max``, ``mean``, ``last``, ``count``), built
from level *i − 1* (level 1 from the dataset itself). A day of a level is rewritten whole
(idempotent), then the level's watermark records the source files it was computed from; the
guards let retention delete only covered files, so a row is never deleted before every level
covering it is committed — late data included. :func:`read_rollup` serves queries.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa

from sparkhu.retention.context import RetentionContext
from sparkhu.retention.guards import DOWNSAMPLE_OWNER, covered, level_key, rollup_name
from sparkhu.storage.lake import PartitionInfo
from sparkhu.timeaxis import TS_TYPE

ROLLUP_COLUMNS = ("series_id", "ts", "min", "max", "mean", "last", "count")

_FROM_POINTS = """
SELECT series_id::VARCHAR AS series_id, (epoch_us(ts) // $w) * $w AS b,
       min(value) AS min, max(value) AS max, avg(value) AS mean,
       arg_max(value, ts) AS last, count(value) AS count
FROM src GROUP BY ALL ORDER BY series_id, b
"""
_FROM_ROLLUP = """
SELECT series_id::VARCHAR AS series_id, (epoch_us(ts) // $w) * $w AS b,
       min("min") AS min, max("max") AS max,
       sum("mean" * "count") / nullif(sum("count"), 0) AS mean,
       arg_max("last", ts) AS last, sum("count")::BIGINT AS count
FROM src GROUP BY ALL ORDER BY series_id, b
"""


def rollup(table: pa.Table, every_s: int, *, from_rollup: bool = False) -> pa.Table:
    """Buckets of ``every_s`` seconds of points (or of a finer rollup, ``from_rollup``).

    >>> from sparkhu.series import points
    >>> r = rollup(points("a/b/c", [0, 60_000_000, 300_000_000], [1.0, 3.0, 5.0]), 300)
    >>> r.column("mean").to_pylist(), r.column("last").to_pylist(), r.column("count").to_pylist()
    ([2.0, 5.0], [3.0, 5.0], [2, 1])
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("src", table)
        out = con.sql(_FROM_ROLLUP if from_rollup else _FROM_POINTS, params={"w": every_s * 1_000_000})
        result = out.to_arrow_table()
    finally:
        con.close()
    ts = result.column("b").cast(pa.int64()).cast(TS_TYPE)
    return pa.table(
        {
            "series_id": result.column("series_id").cast(pa.string()),
            "ts": ts,
            "min": result.column("min").cast(pa.float64()),
            "max": result.column("max").cast(pa.float64()),
            "mean": result.column("mean").cast(pa.float64()),
            "last": result.column("last").cast(pa.float64()),
            "count": result.column("count").cast(pa.int64()),
        }
    )


def build_level(
    ctx: RetentionContext,
    base: str,
    source_zone: str,
    source_dataset: str,
    every_s: int,
    days: list[date],
) -> tuple[int, int]:
    """(Re)build ``days`` of the level ``every_s`` of ``base`` from its source; returns (rows in, rows out).

    The source files are listed before they are read, and only those are recorded as covered, so
    a file written meanwhile stays uncovered (and so undeletable) until the next build.
    """
    lake = ctx.lake
    target = rollup_name(base, every_s)
    key = level_key(source_zone, source_dataset, every_s)
    marks = covered(ctx, source_zone, source_dataset, every_s)
    listing = dict(lake.partition_files(source_zone, source_dataset))
    from_rollup = source_zone == "analysis" and source_dataset != base
    rows_in = rows_out = 0
    for day in sorted(set(days)):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        keys = [k for k in listing if start <= _start(source_zone, source_dataset, k) < end]
        files = {k: [path.rsplit("/", 1)[-1] for path, _ in listing[k]] for k in keys}
        if from_rollup:
            data = lake.read_table(source_zone, source_dataset, start=start, end=end)
        else:
            data = lake.read(source_zone, source_dataset, start=start, end=end)
        rows_in += data.num_rows
        table = rollup(data, every_s, from_rollup=from_rollup) if data.num_rows else _empty_rollup()
        rows_out += table.num_rows
        lake.replace_table("analysis", target, table, [day])
        for k in [k for k in marks if start <= _start(source_zone, source_dataset, k) < end]:
            del marks[k]  # keys of the day that are gone are no longer covered nor needed
        marks.update({k: set(v) for k, v in files.items()})
        position = {"covered": {k: sorted(v) for k, v in marks.items()}, "base": base}
        ctx.catalog.set_watermark(DOWNSAMPLE_OWNER, key, position)
    return rows_in, rows_out


def _start(zone: str, dataset: str, key: str) -> datetime:
    return PartitionInfo(zone, dataset, key, 0, 0, 0).start


def _empty_rollup() -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array([], pa.string()),
            "ts": pa.array([], TS_TYPE),
            **{c: pa.array([], pa.float64()) for c in ("min", "max", "mean", "last")},
            "count": pa.array([], pa.int64()),
        }
    )


def read_rollup(
    ctx: RetentionContext,
    dataset: str,
    every_s: int,
    *,
    series: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pa.Table:
    """The buckets of level ``every_s`` of ``dataset``: series_id, ts, min, max, mean, last, count."""
    return ctx.lake.read_table("analysis", rollup_name(dataset, every_s), series=series, start=start, end=end)
