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
import pyarrow.compute as pc

from sparkhu.retention.context import RetentionContext
from sparkhu.retention.guards import DOWNSAMPLE_OWNER, level_key, rollup_name
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
    a file written meanwhile stays uncovered (and so undeletable) until the next build. Buckets
    whose source rows retention already removed (before the day's ``trimmed`` mark) are not
    recomputed from what is left: their committed values are merged with the rows of the files
    that arrived since (late data), so a rebuild never forgets what was rolled up before.
    """
    lake = ctx.lake
    target = rollup_name(base, every_s)
    key = level_key(source_zone, source_dataset, every_s)
    position = ctx.catalog.get_watermark(DOWNSAMPLE_OWNER, key) or {}
    marks = {k: set(v) for k, v in position.get("covered", {}).items()}
    trimmed: dict[str, int] = dict(position.get("trimmed", {}))
    listing = dict(lake.partition_files(source_zone, source_dataset))
    from_rollup = source_zone == "analysis" and source_dataset != base
    rows_in = rows_out = 0
    for day in sorted(set(days)):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        keys = [k for k in listing if start <= _start(source_zone, source_dataset, k) < end]
        files = {k: [path.rsplit("/", 1)[-1] for path, _ in listing[k]] for k in keys}
        paths = [p for k in keys for p, _ in listing[k]]
        # exactly the listed files: a file landing now is neither read nor marked covered
        data = (
            lake.split_files(source_zone, source_dataset, paths, "TRUE", {})[0] if paths else _empty_rollup()
        )
        rows_in += data.num_rows
        table = rollup(data, every_s, from_rollup=from_rollup) if data.num_rows else _empty_rollup()
        cut = trimmed.get(day.isoformat())
        if cut is not None:
            late_paths = [
                p for k in keys for p, _ in listing[k] if p.rsplit("/", 1)[-1] not in marks.get(k, set())
            ]
            table = _merge_trimmed(
                ctx,
                target,
                source_zone,
                source_dataset,
                late_paths,
                table,
                every_s,
                from_rollup,
                start,
                end,
                cut,
            )
        rows_out += table.num_rows
        lake.replace_table("analysis", target, table, [day])
        for k in [k for k in marks if start <= _start(source_zone, source_dataset, k) < end]:
            del marks[k]  # keys of the day that are gone are no longer covered nor needed
        marks.update({k: set(v) for k, v in files.items()})
        position = {"covered": {k: sorted(v) for k, v in marks.items()}, "trimmed": trimmed, "base": base}
        ctx.catalog.set_watermark(DOWNSAMPLE_OWNER, key, position)
    return rows_in, rows_out


def _merge_trimmed(
    ctx: RetentionContext,
    target: str,
    source_zone: str,
    source_dataset: str,
    late_paths: list[str],
    fresh: pa.Table,
    every_s: int,
    from_rollup: bool,
    start: datetime,
    end: datetime,
    cut: int,
) -> pa.Table:
    """Buckets starting before ``cut``: committed values ⊕ the late files' rows; after: ``fresh``."""
    lake = ctx.lake
    existing = lake.read_table("analysis", target, start=start, end=end)
    parts = [existing.select(list(ROLLUP_COLUMNS))] if existing.num_rows else []
    if late_paths:
        rows, _ = lake.split_files(source_zone, source_dataset, late_paths, "TRUE", {})
        if rows.num_rows:
            parts.append(rollup(rows, every_s, from_rollup=from_rollup).cast(_empty_rollup().schema))
    bucket_us = pc.multiply(
        pc.divide(fresh.column("ts").cast(pa.int64()), every_s * 1_000_000), every_s * 1_000_000
    )
    recent = fresh.filter(pc.greater_equal(bucket_us, cut))
    if not parts:
        return recent
    old = rollup(pa.concat_tables([p.cast(_empty_rollup().schema) for p in parts]), every_s, from_rollup=True)
    old = old.filter(pc.less(old.column("ts").cast(pa.int64()), cut))
    return pa.concat_tables([old, recent.cast(old.schema)]).sort_by(
        [("series_id", "ascending"), ("ts", "ascending")]
    )


def note_removal(
    ctx: RetentionContext, level: tuple[str, str, int], key: str, day: date, cut: int, kept_file: str | None
) -> None:
    """Before retention removes rows of a level's source partition: the rows before ``cut`` of ``day``
    are now only in the level (so a rebuild merges instead of recomputing them), and ``kept_file``
    (the partition's rewritten rest, a subset of covered rows) is covered."""
    wm = level_key(*level)
    position = ctx.catalog.get_watermark(DOWNSAMPLE_OWNER, wm) or {"covered": {}, "trimmed": {}}
    trimmed = dict(position.get("trimmed", {}))
    trimmed[day.isoformat()] = max(cut, trimmed.get(day.isoformat(), cut))
    covered_ = dict(position.get("covered", {}))
    if kept_file is not None:
        covered_[key] = sorted({*covered_.get(key, []), kept_file.rsplit("/", 1)[-1]})
    ctx.catalog.set_watermark(DOWNSAMPLE_OWNER, wm, {**position, "covered": covered_, "trimmed": trimmed})


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
