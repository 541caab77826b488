"""The time axis: instants as int64 microseconds since the epoch (UTC), and how text becomes time.

Every layer computes on microseconds and converts at its edges with the functions here:
:func:`to_us`/:func:`from_us` for one instant (:func:`now_us` for the wall clock),
:func:`to_us_array`, :func:`from_us_array` and :func:`from_us_index` for columns (Arrow,
numpy, pandas). A naive datetime is always UTC.
Text from users (CLI options, API arguments, settings) is parsed here too: :func:`parse_time`
for ISO-8601 instants, :func:`parse_duration` for positive spans (a sampling period) and
:func:`parse_offset` for signed shifts of the axis (a replay's offset).

>>> to_us(datetime(1970, 1, 1, 0, 1, tzinfo=UTC))
60000000
>>> from_us(60_000_000)
datetime.datetime(1970, 1, 1, 0, 1, tzinfo=datetime.timezone.utc)
>>> parse_time("2024-03-01T09:00:00+09:00", "start")
datetime.datetime(2024, 3, 1, 0, 0, tzinfo=datetime.timezone.utc)
>>> parse_duration("15min"), parse_offset("-2h"), parse_offset("end_now")
(datetime.timedelta(seconds=900), datetime.timedelta(days=-1, seconds=79200), 'end_now')
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeAlias, overload

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkhu.errors import InputError

TS_TYPE: Final = pa.timestamp("us", tz="UTC")
"""The Arrow type of every timestamp sparkhu stores or ships."""

US_PER_MS: Final = 1_000
US_PER_S: Final = 1_000_000
US_PER_MIN: Final = 60 * US_PER_S
US_PER_HOUR: Final = 60 * US_PER_MIN
US_PER_DAY: Final = 24 * US_PER_HOUR

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US: Final = -62_135_596_800_000_000
"""``datetime.min`` (0001-01-01T00:00Z) in µs: the earliest instant a ``datetime`` holds."""
MAX_US: Final = 253_402_300_799_999_999
"""``datetime.max`` (9999-12-31T23:59:59.999999Z) in µs: the latest instant a ``datetime`` holds."""

POINT_MIN_US: Final = MIN_US
"""The earliest timestamp a point may have: 0001-01-01T00:00Z."""
POINT_END_US: Final = 253_370_764_800_000_000
"""The first timestamp a point may not have: 9999-01-01T00:00Z (the lake's partition of a point's
day or hour must have a key after it, so the last year a ``datetime`` holds is left out)."""
POINT_RANGE: Final = "years 1 to 9998 (UTC)"
"""How messages name the range of :func:`in_point_range`."""

EPOCH_UNITS_US: Final = {"s": US_PER_S, "ms": US_PER_MS, "us": 1}
"""Microseconds per unit of epoch numbers (``ts_unit`` of files and JSON messages)."""

OffsetAnchor: TypeAlias = Literal["end_now", "start_now"]
"""Offsets fixed when a replay starts: its last (or first) point moved to the wall time."""

DURATION_FORMS: Final = "a positive number with a unit such as 60s, 15min, 1h or 1d (us, ms, s, min, h, d, w)"
OFFSET_FORMS: Final = "end_now, start_now or an offset such as +3196d, -2h, 90min"

_ONE_US: Final = timedelta(microseconds=1)
_SPAN_RE: Final = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(us|ms|sec|min|s|m|h|d|w)\s*$")
_UNIT_US: Final = {
    "us": 1,
    "ms": US_PER_MS,
    "s": US_PER_S,
    "sec": US_PER_S,
    "min": US_PER_MIN,
    "m": US_PER_MIN,
    "h": US_PER_HOUR,
    "d": US_PER_DAY,
    "w": 7 * US_PER_DAY,
}
_ANCHORS: Final[tuple[OffsetAnchor, ...]] = ("end_now", "start_now")


# ---------------------------------------------------------------------- one instant


@overload
def to_us(moment: datetime) -> int: ...
@overload
def to_us(moment: None) -> None: ...
def to_us(moment: datetime | None) -> int | None:
    """Microseconds since the epoch of ``moment`` (naive = UTC; ``None`` stays ``None``).

    Exact for ``datetime`` and floored for a nanosecond ``pandas.Timestamp``.

    >>> to_us(datetime(1970, 1, 1, 0, 0, 1)), to_us(None)
    (1000000, None)
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _ONE_US


def in_point_range(micros: Any) -> Any:
    """True where µs timestamps (an int, numpy array or float array) may be the time of a point.

    The one time rule of every entry point (files, bus messages, replays, the lake): a point lies
    in [:data:`POINT_MIN_US`, :data:`POINT_END_US`), the :data:`POINT_RANGE`. NaN is out of range.
    Python ints of any size are compared exactly, so a 400-digit timestamp is simply out of range.

    >>> in_point_range(to_us(datetime(9998, 12, 31))), in_point_range(to_us(datetime(9999, 1, 1)))
    (True, False)
    >>> in_point_range(np.array([0.0, np.nan, 1e30])).tolist()
    [True, False, False]
    """
    if isinstance(micros, int):
        return POINT_MIN_US <= micros < POINT_END_US
    values = np.asarray(micros)
    return (values >= POINT_MIN_US) & (values < POINT_END_US)


def now_us() -> int:
    """The wall-clock time in microseconds since the epoch (the same in every process of a machine).

    >>> to_us(datetime(2024, 1, 1)) < now_us() < MAX_US
    True
    """
    return time.time_ns() // 1_000  # ns → µs, floored like to_us


@overload
def from_us(micros: int | np.integer[Any]) -> datetime: ...
@overload
def from_us(micros: None) -> None: ...
def from_us(micros: int | np.integer[Any] | None) -> datetime | None:
    """The UTC datetime of ``micros`` since the epoch (``None`` stays ``None``).

    >>> from_us(-1).isoformat()
    '1969-12-31T23:59:59.999999+00:00'
    """
    return None if micros is None else EPOCH + timedelta(microseconds=int(micros))


def to_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive = UTC).

    >>> from datetime import timezone
    >>> to_utc(datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))).isoformat()
    '2024-01-01T00:00:00+00:00'
    """
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def duration_us(span: timedelta) -> int:
    """The exact length of ``span`` in microseconds (no float rounding).

    >>> duration_us(timedelta(days=3196)), duration_us(timedelta(microseconds=-1))
    (276134400000000, -1)
    """
    return span // _ONE_US


# ---------------------------------------------------------------------- columns


def to_us_array(values: Any) -> np.ndarray:
    """Timestamps (Arrow array or chunked array, pandas Series or index, numpy datetime64) as int64 µs.

    Naive timestamps are UTC; finer units than µs are floored. Raises :class:`InputError`
    for values that are not timestamps or hold nulls.

    >>> to_us_array(pd.Series(pd.to_datetime(["1970-01-01 00:00:01"]))).tolist()
    [1000000]
    >>> to_us_array(pa.array([60_000_000]).cast(TS_TYPE)).tolist()
    [60000000]
    """
    if isinstance(values, pa.Array | pa.ChunkedArray):
        if not pa.types.is_timestamp(values.type):
            raise InputError(f"expected timestamps, got Arrow {values.type}", field="ts")
        if values.null_count:
            raise InputError(f"{values.null_count} timestamp(s) are null", field="ts")
        if values.type.unit != "us":
            values = values.to_pandas()  # pandas floors ns → µs where Arrow's cast would refuse
        else:
            chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
            parts = [chunk.view(pa.int64()).to_numpy() for chunk in chunks]
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    dtype = getattr(values, "dtype", None)
    if dtype is not None and not pd.api.types.is_datetime64_any_dtype(dtype):
        raise InputError(f"expected timestamps, got dtype {dtype}", field="ts")
    if isinstance(values, pd.Series) and isinstance(dtype, pd.DatetimeTZDtype) and dtype.unit == "us":
        return np.asarray(values.array.asi8, dtype=np.int64)  # the usual frame column: no conversion
    try:
        index = pd.DatetimeIndex(values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expected timestamps ({exc})", field="ts") from exc
    if index.hasnans:
        raise InputError(f"{int(index.isna().sum())} timestamp(s) are missing", field="ts")
    # asi8 counts from the epoch in UTC whether the index is aware or naive (naive = UTC)
    return np.asarray(index.as_unit("us").asi8, dtype=np.int64)


def from_us_array(micros: Any) -> pa.TimestampArray:
    """int64 µs (any integer sequence) as an Arrow array of :data:`TS_TYPE`.

    >>> arr = from_us_array([0, 60_000_000])
    >>> arr.type == TS_TYPE, arr.cast(pa.int64()).to_pylist()
    (True, [0, 60000000])
    """
    return pa.array(np.asarray(micros, dtype=np.int64)).cast(TS_TYPE)


def from_us_index(micros: Any) -> pd.DatetimeIndex:
    """int64 µs as a pandas ``DatetimeIndex`` of dtype ``datetime64[us, UTC]``.

    >>> str(from_us_index([0, 60_000_000]).dtype)
    'datetime64[us, UTC]'
    """
    return pd.DatetimeIndex(np.asarray(micros, dtype=np.int64).view("M8[us]")).tz_localize("UTC")


# ---------------------------------------------------------------------- text


@overload
def parse_time(text: str, field: str) -> datetime: ...
@overload
def parse_time(text: None, field: str) -> None: ...
def parse_time(text: str | None, field: str) -> datetime | None:
    """An ISO-8601 instant (``2024-01-31``, ``2024-01-31T06:00``, ``...Z``, ``...+09:00``) as aware UTC.

    Naive means UTC; ``None`` stays ``None``. :class:`InputError` names ``field`` otherwise.

    >>> parse_time("2024-01-31T06:00", "--start").isoformat()
    '2024-01-31T06:00:00+00:00'
    >>> parse_time("yesterday", "start")
    Traceback (most recent call last):
    ...
    sparkhu.errors.InputError: start: 'yesterday' is not an ISO 8601 timestamp (e.g. 2024-03-01T09:00:00Z)
    """
    if text is None:
        return None
    try:
        return to_utc(datetime.fromisoformat(text.strip()))
    except OverflowError as exc:  # an offset moves it past year 1 or 9999
        raise InputError(
            f"{text!r} is out of range: in UTC it is before year 1 or after 9999", field=field
        ) from exc
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{text!r} is not an ISO 8601 timestamp (e.g. 2024-03-01T09:00:00Z)", field=field
        ) from exc


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """A positive span such as ``60s``, ``1min``, ``15min``, ``1h``, ``1d`` or ``2w``.

    Units: ``us``, ``ms``, ``s`` (``sec``), ``min`` (``m``), ``h``, ``d``, ``w``; decimals allowed.

    >>> parse_duration("1.5h")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("0s", "period")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparkhu.errors.InputError: period: '0s' is not a positive number with a unit such as 60s, 15min, ...
    """
    span = _span(text)
    if span is None or span <= timedelta(0):
        raise InputError(f"{text!r} is not {DURATION_FORMS}", field=field)
    return span


def parse_offset(text: str, field: str = "shift") -> timedelta | OffsetAnchor:
    """A signed shift of the time axis (``+3196d``, ``-2h``, ``90min``) or an anchor word.

    ``end_now`` and ``start_now`` (:data:`OffsetAnchor`) come back as they are: the offset
    they mean is only known when a replay starts. Units as :func:`parse_duration`.

    >>> parse_offset("+3196d"), parse_offset("start_now")
    (datetime.timedelta(days=3196), 'start_now')
    >>> parse_offset("soon")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparkhu.errors.InputError: shift: expected end_now, start_now or an offset such as ..., got 'soon'
    """
    for anchor in _ANCHORS:
        if text == anchor:
            return anchor
    span = _span(text)
    if span is None:
        raise InputError(f"expected {OFFSET_FORMS}, got {text!r}", field=field)
    return span


def format_duration(span: timedelta) -> str:
    """The shortest exact spelling of a span, the inverse of :func:`parse_duration`.

    >>> format_duration(timedelta(seconds=60)), format_duration(timedelta(seconds=90))
    ('1min', '90s')
    """
    micros = duration_us(span)
    for unit in ("w", "d", "h", "min", "s"):
        size = _UNIT_US[unit]
        if micros >= size and micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{micros}us"


def _span(text: str) -> timedelta | None:
    """``<signed number><unit>`` as a timedelta (rounded to the µs), None when it is not one."""
    match = _SPAN_RE.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    try:
        return timedelta(microseconds=float(match.group(1)) * _UNIT_US[match.group(2)])
    except OverflowError:  # beyond ±999,999,999 days
        return None
