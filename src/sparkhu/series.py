"""Series ids and the Arrow schema in which points travel.

A series id names ``source/measurement/field``, e.g. ``ampds2/electricity/WHE.P`` (the
AMPds2 whole-house meter's real power). Points always travel as Arrow tables or record
batches of :data:`POINT_SCHEMA`: ``series_id`` (dictionary-encoded string), ``ts``
(timestamp, microseconds, UTC) and ``value`` (float64).

>>> sid = SeriesId.parse("ampds2/electricity/WHE.P")
>>> sid.source, sid.measurement, sid.field
('ampds2', 'electricity', 'WHE.P')
>>> t = points("ampds2/electricity/WHE.P", [0, 60_000_000], [1.0, 2.5])
>>> t.schema.equals(POINT_SCHEMA), t.num_rows
(True, 2)
>>> parse_period("15min")
datetime.timedelta(seconds=900)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import InputError

SERIES_ID_TYPE = pa.dictionary(pa.int32(), pa.string())
TS_TYPE = pa.timestamp("us", tz="UTC")
POINT_SCHEMA = pa.schema(
    [
        pa.field("series_id", SERIES_ID_TYPE, nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("value", pa.float64()),
    ]
)

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
    ts = pa.array(np.asarray(ts_us, dtype="int64")).cast(TS_TYPE)
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


_PERIOD_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|sec|min|m|h|d|w)\s*$")
_UNIT_SECONDS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "sec": 1,
    "min": 60,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
}


def parse_period(text: str) -> timedelta:
    """Parse a sampling period such as ``60s``, ``1min``, ``15min``, ``1h`` or ``1d``."""
    match = _PERIOD_RE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"period {text!r} is not a positive number with a unit (us, ms, s, min, h, d, w)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_period(period: timedelta) -> str:
    """The shortest exact spelling of a period (``60s`` → ``1min``)."""
    seconds = period.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1e6)}us"
