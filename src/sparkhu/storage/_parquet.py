"""Helpers of the lake: partition layouts, file names, input checks, Parquet I/O, sorted results.

A *layout* maps a UTC timestamp to a partition key and back to the interval it covers:

>>> layout = LAYOUTS["hourly"]
>>> layout.key(to_us(datetime(2024, 1, 2, 5, 30, tzinfo=UTC)) // layout.unit_us)
'year=2024/month=01/day=02/hour=05'
>>> [d.isoformat() for d in layout.interval(layout.parse("year=2024/month=01/day=02/hour=05"))]
['2024-01-02T05:00:00+00:00', '2024-01-02T06:00:00+00:00']
>>> LAYOUTS["date"].key(0)
'date=1970-01-01'
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkhu.errors import InputError, LakeError
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE, conform, conform_keys, empty_points, series_runs
from sparkhu.timeaxis import EPOCH, MIN_US, TS_TYPE, US_PER_DAY, US_PER_HOUR, from_us, to_us

ROW_GROUP_SIZE = 1 << 17
"""Rows per row group: files are sorted by series, so a read of a few series skips, by the row
groups' statistics, all but the one or two groups that hold each of them."""
_MAX_US = to_us(datetime(9999, 1, 1, tzinfo=UTC))  # year 9999 has no partition key after it
_NAME_RE = re.compile(r"^part-(\d{20})-")
_ROWS_RE = re.compile(r"^part-\d{20}-[0-9a-f]{8}-n(\d+)(?:-c)?\.parquet$")
_LEVEL_RE = {
    "date": re.compile(r"^date=(\d{4})-(\d{2})-(\d{2})$"),
    "year": re.compile(r"^year=(\d{4})$"),
    "month": re.compile(r"^month=(\d{2})$"),
    "day": re.compile(r"^day=(\d{2})$"),
    "hour": re.compile(r"^hour=(\d{2})$"),
}


@dataclass(frozen=True)
class Layout:
    """A partitioning scheme: directory levels and the width of one partition."""

    name: str
    levels: tuple[str, ...]
    unit_us: int
    pattern: str

    def key(self, bucket: int) -> str:
        """The partition key of bucket number ``bucket`` (``ts_us // unit_us``)."""
        moment = from_us(bucket * self.unit_us)
        if self.name == "date":
            return f"date={moment:%Y-%m-%d}"
        return f"year={moment:%Y}/month={moment:%m}/day={moment:%d}/hour={moment:%H}"

    def parse_level(self, level: str, name: str) -> tuple[int, ...] | None:
        """The components (year, month, ...) of one directory name, None if it is not one."""
        match = _LEVEL_RE[level].match(name)
        return tuple(int(group) for group in match.groups()) if match else None

    def parse(self, key: str) -> tuple[int, ...]:
        """Components of a full partition key; ValueError if it does not follow the layout."""
        names = key.split("/")
        comps: tuple[int, ...] = ()
        if len(names) == len(self.levels):
            for level, name in zip(self.levels, names, strict=True):
                part = self.parse_level(level, name)
                if part is None:
                    break
                comps += part
            else:
                try:
                    start, _ = self.interval(comps)  # validates the calendar (no month=13)
                except ValueError:
                    start = None
                if start is not None and self.key(to_us(start) // self.unit_us) == key:
                    return comps
        raise ValueError(f"partition key {key!r} does not follow layout {self.name!r} ({self.pattern})")

    def interval(self, comps: tuple[int, ...]) -> tuple[datetime, datetime]:
        """[start, end) covered by a prefix (year[, month[, day[, hour]]]) of a key's components."""
        try:
            if len(comps) == 1:
                return datetime(comps[0], 1, 1, tzinfo=UTC), datetime(comps[0] + 1, 1, 1, tzinfo=UTC)
            if len(comps) == 2:
                year, month = comps
                nxt = (year + 1, 1) if month == 12 else (year, month + 1)
                return datetime(year, month, 1, tzinfo=UTC), datetime(*nxt, 1, tzinfo=UTC)
            if len(comps) == 3:
                year, month, day = comps
                start = datetime(year, month, day, tzinfo=UTC)
                return start, start + timedelta(days=1)
            year, month, day, hour = comps
            start = datetime(year, month, day, hour, tzinfo=UTC)
            return start, start + timedelta(hours=1)
        except ValueError as exc:  # month=13, day=32, hour=24 ...
            raise ValueError(f"partition components {comps} are not a valid UTC time: {exc}") from exc

    def day_prefix(self, day: date) -> str:
        """The directory (relative to the dataset) holding every partition of ``day``."""
        if self.name == "date":
            return f"date={day:%Y-%m-%d}"
        return f"year={day:%Y}/month={day:%m}/day={day:%d}"


LAYOUTS = {
    "date": Layout("date", ("date",), US_PER_DAY, "date=YYYY-MM-DD"),
    "hourly": Layout(
        "hourly", ("year", "month", "day", "hour"), US_PER_HOUR, "year=YYYY/month=MM/day=dd/hour=HH"
    ),
}


def split_partitions(table: pa.Table, layout: Layout, column: str = "ts") -> Iterator[tuple[str, pa.Table]]:
    """Yield (partition key, rows) per partition of the timestamps in ``column`` (no nulls).

    Vectorised: one integer division for the bucket numbers, a monotonicity check and, only
    when the rows are not already grouped, one stable radix-friendly argsort and one take.
    """
    ts = table.column(column).combine_chunks().view(pa.int64()).to_numpy()
    buckets = np.floor_divide(ts, layout.unit_us)
    falls = np.flatnonzero(buckets[1:] < buckets[:-1]) + 1
    if 0 < len(falls) <= _MAX_RUNS:  # a few ordered runs (one per column of a wide file): slices
        yield from _split_runs(table, buckets, falls, layout)
        return
    if len(falls):
        low = int(buckets.min())
        span = int(buckets.max()) - low
        rel = buckets - low
        if span < 1 << 16:
            rel = rel.astype(np.uint16)  # numpy sorts 16-bit integers with a radix sort
        order = np.argsort(rel, kind="stable")
        table = table.take(pa.array(order))
        buckets = buckets[order]
    cuts = [0, *(np.flatnonzero(np.diff(buckets)) + 1).tolist(), len(buckets)]
    for lo, hi in itertools.pairwise(cuts):
        yield layout.key(int(buckets[lo])), table.slice(lo, hi - lo)


_MAX_RUNS = 4096


def _split_runs(
    table: pa.Table, buckets: np.ndarray, falls: np.ndarray, layout: Layout
) -> Iterator[tuple[str, pa.Table]]:
    """:func:`split_partitions` of rows made of a few runs of ascending buckets: each partition is
    the concatenation of slices of the runs (no sort, no copy), in key order."""
    found: dict[int, list[pa.Table]] = {}
    bounds = [0, *falls.tolist(), len(buckets)]
    for lo, hi in itertools.pairwise(bounds):
        run = buckets[lo:hi]
        cuts = [0, *(np.flatnonzero(np.diff(run)) + 1).tolist(), len(run)]
        for a, b in itertools.pairwise(cuts):
            found.setdefault(int(run[a]), []).append(table.slice(lo + a, b - a))
    for bucket in sorted(found):
        yield layout.key(bucket), pa.concat_tables(found[bucket])


def sort_points(part: pa.Table) -> pa.Table:
    """``part`` (no null series_id or ts) ordered by (series_id, ts), so reads sort little.

    :func:`~sparkhu.series.series_runs` does it: one stable radix sort on the series' rank
    when each series' timestamps already ascend (the usual case), a full lexsort otherwise.
    """
    if part.num_rows < 2:
        return part
    return series_runs(part.unify_dictionaries()).table


class FileNamer:
    """Names data files so that they sort by write order: ``part-<time_ns:020d>-<uuid8>.parquet``.

    A file written with a known row count carries it as ``-n<rows>`` before the suffix, so that
    counting rows (retention planning over thousands of partitions) needs no footer read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next_ns(self) -> int:
        """A nanosecond stamp, strictly increasing within this process."""
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last

    def name(self, ns: int | None = None, *, compacted: bool = False, rows: int | None = None) -> str:
        """A new file name stamped ``ns`` (default: now); compacted files end in ``-c``; ``rows``
        is recorded in the name (see :func:`name_rows`)."""
        stamp = self.next_ns() if ns is None else ns
        count = "" if rows is None else f"-n{rows}"
        return f"part-{stamp:020d}-{uuid.uuid4().hex[:8]}{count}{'-c' if compacted else ''}.parquet"


def name_rows(name: str) -> int | None:
    """The row count recorded in a data file's name at write time, None if it carries none.

    >>> name_rows(FileNamer().name(7, rows=42, compacted=True))
    42
    >>> name_rows("part-00000000000000000007-0123abcd.parquet") is None
    True
    """
    match = _ROWS_RE.match(name)
    return int(match.group(1)) if match else None


def name_ns(name: str) -> int | None:
    """The write stamp of a file named by :class:`FileNamer`, None for foreign files."""
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else None


def write_atomic(table: pa.Table, fs: pafs.FileSystem, path: str) -> None:
    """Write ``table`` as Parquet to ``path.tmp`` and rename it to ``path`` (zstd, big row groups)."""
    tmp = path + ".tmp"
    dictionary = [name for name in ("series_id",) if name in table.column_names]
    try:
        pq.write_table(
            table,
            tmp,
            filesystem=fs,
            compression="zstd",
            use_dictionary=dictionary or False,
            row_group_size=ROW_GROUP_SIZE,
        )
        fs.move(tmp, path)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except OSError:
            pass
        raise


def point_filters(
    series: Sequence[str] | None, start_us: int | None, end_us: int | None
) -> tuple[str, dict[str, Any], pads.Expression | None]:
    """SQL WHERE clause with its parameters, and the pyarrow twin of its time bounds."""
    where = ["series_id IS NOT NULL", "ts IS NOT NULL"]
    params: dict[str, Any] = {}
    bounds = []
    if start_us is not None:
        where.append("ts >= $start::TIMESTAMPTZ")
        params["start"] = from_us(start_us).isoformat()
        bounds.append(pads.field("ts") >= pa.scalar(start_us, pa.int64()).cast(TS_TYPE))
    if end_us is not None:
        where.append("ts < $end::TIMESTAMPTZ")
        params["end"] = from_us(end_us).isoformat()
        bounds.append(pads.field("ts") < pa.scalar(end_us, pa.int64()).cast(TS_TYPE))
    if series is not None:
        where.append("series_id IN (SELECT unnest($series))")
        params["series"] = [str(s) for s in series]
    arrow_filter = bounds[0] & bounds[1] if len(bounds) == 2 else (bounds[0] if bounds else None)
    return " AND ".join(where), params, arrow_filter


def sorted_points(result: pa.Table, dedup: bool) -> pa.Table:
    """POINT_SCHEMA from a result ordered by (series_id, ts, newest file first).

    ``series_id`` arrives dictionary-encoded (a DuckDB ENUM); when ``dedup``, only the first
    row of each (series_id, ts) run is kept, found by comparing neighbours with numpy.
    """
    if result.num_rows == 0:
        return empty_points()
    result = result.unify_dictionaries()
    ids = result.column("series_id")
    dictionary = ids.chunk(0).dictionary.cast(pa.string())
    indices = np.concatenate([chunk.indices.to_numpy() for chunk in ids.chunks]).astype(np.int32)
    ts = result.column("ts").cast(TS_TYPE)
    value = result.column("value").cast(pa.float64())
    if dedup and len(indices) > 1:
        ts_us = ts.cast(pa.int64()).to_numpy()
        dup = (indices[1:] == indices[:-1]) & (ts_us[1:] == ts_us[:-1])
        if dup.any():
            keep = pa.array(np.concatenate([[True], ~dup]))
            indices = indices[keep.to_numpy(zero_copy_only=False)]
            ts, value = ts.filter(keep), value.filter(keep)
    series_id = pa.DictionaryArray.from_arrays(pa.array(indices), dictionary).cast(SERIES_ID_TYPE)
    return pa.Table.from_arrays([series_id, ts, value], schema=POINT_SCHEMA)


def is_data_file(info: pafs.FileInfo) -> bool:
    """A file readers consider: not ``*.tmp`` and not hidden (``.`` or ``_`` prefix, e.g. ``_SUCCESS``)."""
    name = info.base_name
    return info.type == pafs.FileType.File and not name.endswith(".tmp") and not name.startswith((".", "_"))


def file_uri(fs: pafs.FileSystem, root: str, base: str, path: str) -> str | None:
    """``path`` of ``fs`` (a lake rooted at ``root``, ``base`` in ``fs``) as a URI other readers
    (Spark, Hadoop) open; None when the filesystem has no URI form (an fsspec wrapper given as such).

    Local paths, also under a ``SubTreeFileSystem``, become ``file://`` URIs; under a URI root
    the root's scheme and authority are kept (``s3://bucket/...``, ``hdfs://namenode:8020/...``).
    Paths are not percent-encoded (``date=...`` stays as is), as Hadoop's ``Path`` takes them.

    >>> file_uri(pafs.LocalFileSystem(), "lake", "/data/lake", "/data/lake/raw/m/x.parquet")
    'file:///data/lake/raw/m/x.parquet'
    >>> file_uri(pafs.LocalFileSystem(), "hdfs://nn:8020/lake", "/lake", "/lake/raw/x.parquet")
    'file:///lake/raw/x.parquet'
    """
    while isinstance(fs, pafs.SubTreeFileSystem):
        path = f"{fs.base_path.rstrip('/')}/{path.lstrip('/')}"
        fs, root = fs.base_fs, ""  # the root named the sub-tree's path, not a URI
    if isinstance(fs, pafs.LocalFileSystem):
        return "file://" + path
    if "://" not in root:
        return None
    parts = urllib.parse.urlsplit(root)
    tail = path.lstrip("/")
    if parts.netloc and base.strip("/").startswith(parts.netloc):  # s3://bucket/...: bucket in the path
        return f"{parts.scheme}://{tail}"
    if base.strip("/") == parts.path.strip("/"):  # hdfs://host:port/..., mock:///...: path after authority
        return f"{parts.scheme}://{parts.netloc}/{tail}"
    return None


def walk_partitions(
    list_dir: Callable[[str], list[pafs.FileInfo]],
    where: str,
    layout: Layout,
    start_us: int | None = None,
    end_us: int | None = None,
) -> list[tuple[str, str]]:
    """(key, path) of the partition directories under ``where`` that overlap [start, end).

    Walks the tree level by level (``year=`` → ``month=`` → ...) and descends only into the
    directories whose range overlaps the bounds; names that are not partitions are skipped.
    """
    frontier: list[tuple[str, str, tuple[int, ...]]] = [("", where, ())]
    for level in layout.levels:
        below = []
        for key, path, comps in frontier:
            for info in list_dir(path):
                part = layout.parse_level(level, info.base_name)
                if info.type != pafs.FileType.Directory or part is None:
                    continue
                try:
                    lo, hi = layout.interval(comps + part)
                except ValueError:
                    continue
                if (start_us is None or to_us(hi) > start_us) and (end_us is None or to_us(lo) < end_us):
                    name = f"{key}/{info.base_name}" if key else info.base_name
                    below.append((name, info.path, comps + part))
        frontier = below
    return sorted((key, path) for key, path, _ in frontier)


def conform_points(table: pa.Table | pa.RecordBatch, label: str) -> pa.Table:
    """``table`` as POINT_SCHEMA, or :class:`LakeError` saying why it cannot be written."""
    table = _as_table(table, label)
    try:
        pts = conform(table)
    except InputError as exc:
        raise LakeError(f"cannot write {label}: {exc}") from exc
    except pa.ArrowException as exc:
        raise LakeError(f"cannot write {label}: columns do not convert to POINT_SCHEMA: {exc}") from exc
    return _check_keys(pts, label)


def conform_table(table: pa.Table | pa.RecordBatch, label: str) -> pa.Table:
    """A generic table with ``series_id`` (dictionary string) and ``ts`` (timestamp[us, UTC])
    first and its other columns as given, or :class:`LakeError` saying why it cannot be written."""
    table = _as_table(table, label)
    missing = [name for name in ("series_id", "ts") if name not in table.column_names]
    if missing:
        raise LakeError(
            f"cannot write {label}: missing column(s) {', '.join(missing)}; tables need series_id, ts"
        )
    try:
        ids, ts = conform_keys(table)
    except pa.ArrowException as exc:
        raise LakeError(f"cannot write {label}: series_id must be strings and ts timestamps: {exc}") from exc
    rest = [name for name in table.column_names if name not in ("series_id", "ts")]
    out = pa.Table.from_arrays(
        [ids, ts, *(table.column(name) for name in rest)], names=["series_id", "ts", *rest]
    )
    return _check_keys(out, label)


def _check_keys(table: pa.Table, label: str) -> pa.Table:
    """``table`` unless a row lacks series_id or ts or a timestamp is out of range."""
    for name in ("series_id", "ts"):
        nulls = table.column(name).null_count
        if nulls:
            raise LakeError(f"cannot write {label}: {nulls} row(s) have no {name}; every row needs both")
    if table.num_rows:
        bounds = pc.min_max(table.column("ts").cast(pa.int64()))
        if bounds["min"].as_py() < MIN_US or bounds["max"].as_py() >= _MAX_US:
            raise LakeError(f"cannot write {label}: timestamps must lie in the years 1..9998 (UTC)")
    return table


def check_days(pts: pa.Table, days: list[date], label: str) -> None:
    """Raise :class:`LakeError` unless every point falls on one of ``days`` (UTC)."""
    ts = pts.column("ts").combine_chunks().view(pa.int64()).to_numpy()
    allowed = np.array([(d - EPOCH.date()).days for d in days], dtype=np.int64)
    outside = ~np.isin(np.floor_divide(ts, US_PER_DAY), allowed)
    if outside.any():
        first = from_us(int(ts[int(outside.argmax())]))
        raise LakeError(
            f"cannot replace days of {label}: {int(outside.sum())} point(s) fall outside the given "
            f"days (first at {first.isoformat()}); pass every day the table covers"
        )


def conform_quarantine(records: pa.Table | pa.RecordBatch, schema: pa.Schema, label: str) -> pa.Table:
    """Quarantine records as ``schema``; only ``source`` and ``reason`` are required.

    Missing optional columns become nulls; a missing or null ``quarantined_at`` becomes now.
    """
    records = _as_table(records, label)
    missing = [name for name in ("source", "reason") if name not in records.column_names]
    if missing:
        raise LakeError(f"cannot write {label}: missing column(s) {', '.join(missing)} of QUARANTINE_SCHEMA")
    columns = []
    try:
        for field in schema:
            if field.name in records.column_names:
                col = records.column(field.name)
            else:
                col = pa.chunked_array([pa.nulls(records.num_rows, field.type)])
            if pa.types.is_timestamp(field.type):
                if pa.types.is_timestamp(col.type) and col.type.tz is None:
                    col = col.cast(pa.timestamp(col.type.unit, tz="UTC"))
                col = col.cast(field.type).fill_null(pa.scalar(datetime.now(UTC), field.type))
            columns.append(col.cast(field.type))
    except pa.ArrowException as exc:
        raise LakeError(f"cannot write {label}: columns do not convert to QUARANTINE_SCHEMA: {exc}") from exc
    return pa.Table.from_arrays(columns, schema=schema)


def _as_table(table: pa.Table | pa.RecordBatch, label: str) -> pa.Table:
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise LakeError(f"cannot write {label}: expected a pyarrow Table, got {type(table).__name__}")
    return table


def scan_arrow(
    fs: pafs.FileSystem,
    files: list[str],
    columns: list[str],
    arrow_filter: pads.Expression | None,
    label: str,
) -> pa.Table:
    """Read ``files`` through a pyarrow filesystem with ``file_index``/``file_row_number`` columns.

    The twin of DuckDB's ``read_parquet(files)`` for roots DuckDB cannot open itself.
    """

    def one(item: tuple[int, str]) -> pa.Table:
        index, path = item
        try:
            dataset = pads.dataset(path, filesystem=fs, format="parquet")
            table = dataset.to_table(columns=columns, filter=arrow_filter)
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot read {label}: {path} is not a readable Parquet file ({exc})") from exc
        rows = table.num_rows
        table = table.append_column("file_index", pa.array(np.full(rows, index, dtype=np.int64)))
        return table.append_column("file_row_number", pa.array(np.arange(rows, dtype=np.int64)))

    with ThreadPoolExecutor(min(8, len(files))) as pool:
        tables = list(pool.map(one, enumerate(files)))
    return pa.concat_tables(tables, promote_options="permissive")
