"""Series ids, the Arrow schemas in which points and bad records travel, and series runs.

A series id names ``source/measurement/field``, e.g. ``ampds2/electricity/WHE.P`` (the
AMPds2 whole-house meter's real power). Points always travel as Arrow tables or record
batches of :data:`POINT_SCHEMA`: ``series_id`` (dictionary-encoded string), ``ts``
(timestamp, microseconds, UTC) and ``value`` (float64). Records that cannot become points
travel as :data:`QUARANTINE_SCHEMA` rows, with their reason (:func:`quarantine_records`);
:func:`check_points` holds the rules a point obeys wherever it enters (:data:`POINT_RULES`).
:func:`series_runs` cuts any table with ``series_id`` and ``ts`` columns into one run of
rows per series, ordered by (series, ts); :func:`series_frames` and :func:`series_tail`
build on it.

>>> sid = SeriesId.parse("ampds2/electricity/WHE.P")
>>> sid.source, sid.measurement, sid.field
('ampds2', 'electricity', 'WHE.P')
>>> t = points("ampds2/electricity/WHE.P", [0, 60_000_000], [1.0, 2.5])
>>> t.schema.equals(POINT_SCHEMA), t.num_rows
(True, 2)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import InputError
from sparkhu.timeaxis import POINT_RANGE, TS_TYPE, from_us_array, in_point_range

__all__ = [
    "POINT_SCHEMA",
    "QUARANTINE_SCHEMA",
    "SERIES_ID_TYPE",
    "TS_TYPE",
    "PointCheck",
    "SeriesId",
    "SeriesRuns",
    "check_points",
    "conform",
    "conform_keys",
    "empty_points",
    "is_series_id",
    "points",
    "quarantine_records",
    "series_frames",
    "series_runs",
    "series_tail",
]

SERIES_ID_TYPE = pa.dictionary(pa.int32(), pa.string())
POINT_SCHEMA = pa.schema(
    [
        pa.field("series_id", SERIES_ID_TYPE, nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("value", pa.float64()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),  # file path, topic/partition/offset, connector name
        pa.field("location", pa.string()),  # "line 12", "row 3 col WHE", "offset 17"
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),  # the offending record as text
        pa.field("quarantined_at", TS_TYPE),
    ]
)
"""Records set aside instead of becoming points: where they came from, why, and as what text."""

BAD_ID = "not a series id: expected source/measurement/field"
BAD_TS = f"timestamp out of range; expected {POINT_RANGE}"
BAD_VALUE = "not a finite number"
POINT_RULES = (
    "a point has a series id source/measurement/field, a timestamp in the "
    f"{POINT_RANGE} and a finite value; a missing value (null, NaN) is no point"
)
"""The one rule of every entry point (files, bus messages, replays, connectors): a record that
breaks it is quarantined with one of :data:`BAD_ID`, :data:`BAD_TS`, :data:`BAD_VALUE`."""

_PART = r"[A-Za-z0-9_.:\-]+"
_SERIES_RE = re.compile(rf"^{_PART}/{_PART}/{_PART}$")


@dataclass(frozen=True, order=True)
class SeriesId:
    """``source/measurement/field``; each part is letters, digits and ``_ . : -``."""

    source: str
    measurement: str
    field: str

    @classmethod
    def parse(cls, text: str) -> SeriesId:
        """Parse ``source/measurement/field``; raises :class:`InputError` otherwise."""
        if not _SERIES_RE.match(text):
            raise InputError(
                f"series id {text!r} is not source/measurement/field "
                "(letters, digits and _ . : - in each part)",
                field="series_id",
            )
        source, measurement, field = text.split("/")
        return cls(source, measurement, field)

    def __str__(self) -> str:
        return f"{self.source}/{self.measurement}/{self.field}"


def is_series_id(text: str) -> bool:
    """True when ``text`` is a well-formed series id."""
    return bool(_SERIES_RE.match(text))


def points(
    series_id: str | Sequence[str] | pa.Array,
    ts_us: Sequence[int] | np.ndarray | pa.Array,
    values: Sequence[float] | np.ndarray | pa.Array,
) -> pa.Table:
    """Build a table of :data:`POINT_SCHEMA` from one id (or one per point), µs timestamps and values."""
    ts = from_us_array(ts_us)
    vals = pa.array(np.asarray(values, dtype="float64"))
    if isinstance(series_id, str):
        ids = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(len(ts), dtype="int32")), pa.array([series_id], pa.string())
        )
    else:
        ids = pa.array(series_id, pa.string()).dictionary_encode()
        ids = ids.cast(SERIES_ID_TYPE)
    return pa.Table.from_arrays([ids, ts, vals], schema=POINT_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """Cast a table with ``series_id``, ``ts`` and ``value`` columns to :data:`POINT_SCHEMA`.

    Extra columns are dropped; naive timestamps are taken as UTC.
    """
    missing = [name for name in POINT_SCHEMA.names if name not in table.column_names]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; expected series_id, ts, value")
    ids, ts = conform_keys(table)
    value = table.column("value").cast(pa.float64())
    return pa.Table.from_arrays([ids, ts, value], schema=POINT_SCHEMA)


def conform_keys(table: pa.Table) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """The ``series_id`` and ``ts`` columns cast to the point schema's types (naive ts taken as UTC).

    Raises ``pyarrow.ArrowException`` for columns that cannot be cast; callers name the table.
    """
    ids = table.column("series_id")
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids.cast(pa.string()))
    ts = table.column("ts")
    if pa.types.is_timestamp(ts.type) and ts.type.tz is None:
        ts = pc.assume_timezone(ts, "UTC")
    return ids.cast(SERIES_ID_TYPE), ts.cast(TS_TYPE)


def empty_points() -> pa.Table:
    """A table of :data:`POINT_SCHEMA` with no rows."""
    return POINT_SCHEMA.empty_table()


def quarantine_records(
    source: str | Sequence[str],
    locations: Sequence[str | None],
    fields: Sequence[str | None],
    reasons: Sequence[str],
    raws: Sequence[str | None],
    *,
    at: datetime | None = None,
) -> pa.Table:
    """A :data:`QUARANTINE_SCHEMA` table, one row per bad record, stamped ``at`` (default: now).

    ``source`` is one name for every row or one per row; the other columns have one entry per row.

    >>> bad = quarantine_records("meters.csv", ["line 3"], ["WHE"], ["not a number"], ["3,abc"])
    >>> bad.schema.equals(QUARANTINE_SCHEMA), bad.column("reason").to_pylist()
    (True, ['not a number'])
    """
    n = len(locations)
    sources = [source] * n if isinstance(source, str) else list(source)
    lengths = {len(sources), len(fields), len(reasons), len(raws)}
    if lengths != {n}:
        raise InputError(f"quarantine columns differ in length ({n} locations; others {sorted(lengths)})")
    stamp = pa.repeat(pa.scalar(at if at is not None else datetime.now(UTC), TS_TYPE), n)
    columns = [sources, list(locations), list(fields), list(reasons), list(raws)]
    arrays = [pa.array(column, pa.string()) for column in columns]
    return pa.Table.from_arrays([*arrays, stamp], schema=QUARANTINE_SCHEMA)


class PointCheck(NamedTuple):
    """What :func:`check_points` found: the usable points, and the bad rows with field and reason."""

    points: pa.Table
    rows: list[int]
    """Row numbers (0-based, in the checked table) of the bad points, ascending."""
    fields: list[str]
    reasons: list[str]
    raws: list[str]
    """Each bad point as JSON text, its timestamp in µs (``ts_us``: one out of range is no datetime)."""


def check_points(table: pa.Table) -> PointCheck:
    """Split a :data:`POINT_SCHEMA` table by :data:`POINT_RULES`: usable points, and bad rows.

    A row without a well-formed series id or a timestamp in range, or with an infinite value,
    is bad (its field and reason are listed); a row whose value is missing (null or NaN) is
    dropped without a reason, as an empty CSV cell is. Vectorised; a table that obeys the
    rules (the usual case) is returned as it is after one pass over ts and value.

    >>> t = points(["a/b/c", "a/b/c", "a/b/c"], [0, 253_402_300_799_000_000, 0], [1.0, 2.0, float("inf")])
    >>> check = check_points(t)
    >>> check.points.num_rows, check.rows, check.fields
    (1, [1, 2], ['ts', 'value'])
    """
    if table.num_rows == 0:
        return PointCheck(table, [], [], [], [])
    ids = table.column("series_id")
    ts = table.column("ts")
    value = table.column("value").to_numpy()  # nulls become NaN
    finite = np.isfinite(value)
    ts_us = ts.cast(pa.int64()).to_numpy() if ts.null_count == 0 else None
    ids = ids.unify_dictionaries() if pa.types.is_dictionary(ids.type) else ids
    dictionary = ids.num_chunks and pa.types.is_dictionary(ids.type)
    names = ids.chunk(0).dictionary.to_pylist() if dictionary else None
    good_names = names is not None and all(isinstance(n, str) and is_series_id(n) for n in names)
    if (
        finite.all()
        and ts_us is not None
        and bool(in_point_range(ts_us).all())
        and not ids.null_count
        and good_names
    ):
        return PointCheck(table, [], [], [], [])
    id_text = ids.cast(pa.string()) if pa.types.is_dictionary(ids.type) else ids
    id_ok = (
        np.fromiter(
            (s is not None and is_series_id(s) for s in id_text.to_pylist()), dtype=bool, count=table.num_rows
        )
        if not good_names or ids.null_count
        else np.ones(table.num_rows, dtype=bool)
    )
    ts_valid = ~ts.is_null().to_numpy(zero_copy_only=False)
    ts_all = ts.cast(pa.int64()).fill_null(0).to_numpy()
    ts_ok = ts_valid & in_point_range(ts_all)
    infinite = np.isinf(value)
    bad_rows = np.flatnonzero(~id_ok | ~ts_ok | infinite)
    fields = ["series_id" if not id_ok[r] else "ts" if not ts_ok[r] else "value" for r in bad_rows]
    reasons = [
        (BAD_ID if id_text[int(r)].is_valid else "missing series id")
        if not id_ok[r]
        else (BAD_TS if ts_valid[r] else "missing timestamp")
        if not ts_ok[r]
        else BAD_VALUE
        for r in bad_rows
    ]
    keep = id_ok & ts_ok & finite
    taken = pa.array(bad_rows, pa.int64())
    bad = zip(
        id_text.take(taken).to_pylist(),
        ts.take(taken).cast(pa.int64()).to_pylist(),
        table.column("value").take(taken).to_pylist(),
        strict=True,
    )
    raws = [json.dumps({"series_id": sid, "ts_us": t, "value": v}) for sid, t, v in bad]
    return PointCheck(table.filter(pa.array(keep)), bad_rows.tolist(), fields, reasons, raws)


class SeriesRuns(NamedTuple):
    """A table ordered by (series_id, ts) and where each series' rows are.

    Series ``names[i]`` (ascending) holds rows ``offsets[i]:offsets[i + 1]`` of ``table``.
    """

    table: pa.Table
    names: list[str]
    offsets: np.ndarray

    def sizes(self) -> np.ndarray:
        """Rows per series, in the order of :attr:`names`."""
        return np.diff(self.offsets)

    def slices(self) -> Iterator[tuple[str, int, int]]:
        """``(series_id, lo, hi)`` per series."""
        return zip(self.names, self.offsets[:-1].tolist(), self.offsets[1:].tolist(), strict=True)


def series_runs(table: pa.Table) -> SeriesRuns:
    """``table`` (columns ``series_id`` and ``ts``, any others) sorted by (series_id, ts), cut per series.

    Stable: rows with the same series and timestamp keep their order. Already ordered input
    (the usual case: lake reads, series-major or time-major batches) costs one pass and at
    most one radix sort on the series' rank; only a table whose timestamps fall inside a
    series is fully sorted. :class:`InputError` when a ``series_id`` or ``ts`` is null.

    >>> runs = series_runs(points(["b/b/b", "a/a/a", "b/b/b"], [60_000_000, 0, 0], [1.0, 2.0, 3.0]))
    >>> runs.names, runs.offsets.tolist(), runs.table["value"].to_pylist()
    (['a/a/a', 'b/b/b'], [0, 1, 3], [2.0, 3.0, 1.0])
    """
    for name in ("series_id", "ts"):
        if name not in table.column_names:
            raise InputError(f"missing column {name}; a table of series needs series_id and ts")
        if table.column(name).null_count:
            raise InputError(f"{table.column(name).null_count} row(s) have no {name}", field=name)
    if table.num_rows == 0:
        return SeriesRuns(table, [], np.zeros(1, dtype=np.int64))
    ids = table.column("series_id")
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids.cast(pa.string()))
    ids = ids.unify_dictionaries()
    dictionary = ids.chunk(0).dictionary.cast(pa.string())
    # dense ranks: equal names (a dictionary may repeat one) share a rank
    rank = pc.rank(dictionary, sort_keys="ascending", tiebreaker="dense").to_numpy() - 1
    rank = rank.astype(np.uint16 if len(rank) < 1 << 16 else np.uint32)  # 16 bits: numpy radix-sorts
    keys = rank[np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in ids.chunks])]
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    order = None
    if not bool(np.all(keys[1:] >= keys[:-1])):
        order = np.argsort(keys, kind="stable")
    ts_sorted = ts if order is None else ts[order]
    falls = np.flatnonzero(ts_sorted[1:] < ts_sorted[:-1]) + 1
    if len(falls):
        run_ends = np.cumsum(np.bincount(keys))  # where each series' run ends once sorted
        if not np.isin(falls, run_ends).all():
            order = np.lexsort((ts, keys))
    if order is not None:
        table, keys = table.take(pa.array(order)), keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    by_rank = np.empty(int(rank.max()) + 1, dtype=object)
    by_rank[rank] = dictionary.to_pylist()
    names = [str(name) for name in by_rank[keys[starts]]]
    return SeriesRuns(table, names, np.r_[starts, len(keys)].astype(np.int64))


def series_frames(
    table: pa.Table, columns: Sequence[str] | None = None
) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(series_id, frame)`` per series of ``table``, series and time sorted (see :func:`series_runs`).

    Each frame holds ``columns`` (default: every column but ``series_id``) with a fresh
    index. One Arrow → pandas conversion for the whole table; each frame is a slice of it.

    >>> t = points(["a/b/c", "a/b/c", "x/y/z"], [0, 60_000_000, 0], [1.0, 2.0, 5.0])
    >>> [(sid, frame["value"].tolist()) for sid, frame in series_frames(t)]
    [('a/b/c', [1.0, 2.0]), ('x/y/z', [5.0])]
    """
    runs = series_runs(table)
    if not runs.names:
        return
    wanted = [c for c in table.column_names if c != "series_id"] if columns is None else list(columns)
    frame = runs.table.select(wanted).to_pandas()
    for name, lo, hi in runs.slices():
        yield name, frame.iloc[lo:hi].reset_index(drop=True)


def series_tail(table: pa.Table, n: int) -> pa.Table:
    """The last ``n`` rows (by ts) of every series of ``table``, ordered by (series_id, ts).

    >>> t = points(["a/a/a"] * 3 + ["b/b/b"], [0, 2, 1, 0], [1.0, 3.0, 2.0, 9.0])
    >>> series_tail(t, 2)["value"].to_pylist()
    [2.0, 3.0, 9.0]
    """
    if n < 0:
        raise InputError(f"must be >= 0, got {n}", field="n")
    runs = series_runs(table)
    if not runs.names:
        return runs.table
    sizes = runs.sizes()
    from_end = np.repeat(runs.offsets[1:], sizes) - np.arange(runs.table.num_rows)  # 1 = last row
    return runs.table.filter(pa.array(from_end <= n))
