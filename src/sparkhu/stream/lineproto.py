"""InfluxDB line protocol: read it into points, write points and forecasts as it.

A line ``measurement,tag=v,... field=1.5,other=2i 1609426800000000000`` becomes one point per
numeric field, named like the original system's series: ``<db>/<measurement>/<tag values>.<field>``
— the tag values in the order of their keys (sorted, as InfluxDB keeps them) joined by ``.``; so
``electricity,zone=WHE P=812`` in database ``AMPds2`` is ``AMPds2/electricity/WHE.P`` (without tags:
``AMPds2/electricity/P``). Integers (``2i``, ``2u``) and floats are values, booleans are 1 and 0; a
string field, a malformed line, a name that cannot be part of a series id or a timestamp outside
the years 1 to 9998 becomes a quarantine row (``line N``, field, reason, the line) and the other
lines go on. A line without a timestamp takes ``now_us`` (as InfluxDB does).

>>> good, bad = parse_lines(b"electricity,zone=WHE P=812,Q=3i 60000000000\\nbroken\\n", "AMPds2",
...                         source="push")
>>> good.column("series_id").to_pylist(), good.column("value").to_pylist()
(['AMPds2/electricity/WHE.P', 'AMPds2/electricity/WHE.Q'], [812.0, 3.0])
>>> bad.column("location").to_pylist(), bad.column("reason").to_pylist()
(['line 2'], ['no fields: expected "measurement[,tag=value...] field=value[,...] [timestamp]"'])
>>> encode_lines("forecast", {"series_id": ["a/b/c"]}, {"value": [1.5]}, [60_000_000])
b'forecast,series_id=a/b/c value=1.5 60000000000\\n'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from sparkhu.errors import CodecError
from sparkhu.series import BAD_TS, POINT_SCHEMA, SERIES_ID_TYPE, quarantine_records
from sparkhu.timeaxis import from_us_array, in_point_range, now_us

__all__ = ["PRECISION_US", "encode_lines", "parse_lines", "series_name"]

PRECISION_US: dict[str, float] = {
    "ns": 1e-3,
    "n": 1e-3,
    "u": 1.0,
    "us": 1.0,
    "ms": 1e3,
    "s": 1e6,
    "m": 6e7,
    "h": 3.6e9,
}
"""Microseconds per unit of each ``precision`` InfluxDB's ``/write`` accepts (default ``ns``)."""

_PART = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_SHAPE = 'expected "measurement[,tag=value...] field=value[,...] [timestamp]"'
_INT = re.compile(r"^-?\d+[iu]$")
_BOOL = {
    "t": 1.0,
    "T": 1.0,
    "true": 1.0,
    "True": 1.0,
    "TRUE": 1.0,
    "f": 0.0,
    "F": 0.0,
    "false": 0.0,
    "False": 0.0,
    "FALSE": 0.0,
}


class _Bad(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        self.field, self.reason = field, reason


def series_name(db: str, measurement: str, tags: Sequence[str], field: str) -> str:
    """The series id of ``field`` of a measurement with these tag values (already in key order).

    >>> series_name("AMPds2", "electricity", ["WHE"], "P"), series_name("h", "cpu", [], "usage")
    ('AMPds2/electricity/WHE.P', 'h/cpu/usage')
    """
    return f"{db}/{measurement}/{'.'.join([*tags, field])}"


def _split(text: str, sep: str) -> list[str]:
    """``text`` cut at unescaped ``sep`` outside double quotes."""
    if "\\" not in text and '"' not in text:
        return text.split(sep)
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\([ ,=\"\\])", r"\1", text) if "\\" in text else text


def _part(text: str, what: str) -> str:
    if not _PART.match(text):
        raise _Bad(what, f"{text!r} cannot be part of a series id (letters, digits and _ . : -)")
    return text


def _value(text: str, name: str) -> float:
    if text.startswith('"'):
        raise _Bad(name, "a string field; only numbers become points")
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return float(int(text[:-1]))
    try:
        number = float(text)
    except ValueError:
        raise _Bad(name, f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise _Bad(name, f"{text!r} is not a finite number")
    return number


def _line(
    line: str, db: str, tag_keys: Sequence[str] | None, default_us: int, scale: float
) -> tuple[list[str], int, list[float]]:
    sections = _split(line, " ")
    sections = [s for s in sections if s != ""]
    if len(sections) < 2 or len(sections) > 3:
        raise _Bad(None, f"no fields: {_SHAPE}" if len(sections) < 2 else f"too many sections: {_SHAPE}")
    key = _split(sections[0], ",")
    measurement = _part(_unescape(key[0]), "measurement")
    tags: dict[str, str] = {}
    for pair in key[1:]:
        name, eq, value = pair.partition("=")
        if not eq or not name or not value:
            raise _Bad(None, f"tag {pair!r}: expected key=value")
        tags[_unescape(name)] = _unescape(value)
    keys = sorted(tags) if tag_keys is None else [k for k in tag_keys if k in tags]
    values = [_part(tags[k], k) for k in keys]
    if len(sections) == 3:
        try:
            ts_us = round(int(sections[2]) * scale)
        except ValueError:
            raise _Bad("time", f"{sections[2]!r} is not an integer timestamp") from None
        if not in_point_range(ts_us):
            raise _Bad("time", f"{sections[2]}: {BAD_TS}")
    else:
        ts_us = default_us
    ids: list[str] = []
    numbers: list[float] = []
    for pair in _split(sections[1], ","):
        name, eq, text = pair.partition("=")
        if not eq or not name or not text:
            raise _Bad(None, f"field {pair!r}: expected key=value")
        field = _part(_unescape(name), _unescape(name))
        numbers.append(_value(text, field))
        ids.append(series_name(db, measurement, values, field))
    return ids, ts_us, numbers


def parse_lines(
    data: bytes | str,
    db: str,
    *,
    source: str,
    precision: str = "ns",
    tags: Sequence[str] | None = None,
    now: int | None = None,
) -> tuple[pa.Table, pa.Table]:
    """``(points, quarantine)`` of a line-protocol payload written to database ``db``.

    ``source`` names the payload in quarantine rows (a connector, a topic offset, ``push``);
    ``precision`` is the timestamps' unit; ``tags`` picks and orders the tag keys that name a
    series (default: all, sorted); ``now`` (µs) stamps lines without a timestamp.
    """
    if precision not in PRECISION_US:
        raise CodecError(f"precision {precision!r} is not one of {', '.join(PRECISION_US)}")
    _part(db, "db")
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    scale = PRECISION_US[precision]
    default_us = now_us() if now is None else now
    ids: list[str] = []
    ts: list[int] = []
    values: list[float] = []
    bad_lines: list[str] = []
    bad_fields: list[str | None] = []
    bad_reasons: list[str] = []
    bad_raws: list[str | None] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            line_ids, line_ts, line_values = _line(line, db, tags, default_us, scale)
        except _Bad as exc:
            bad_lines.append(f"line {number}")
            bad_fields.append(exc.field)
            bad_reasons.append(exc.reason)
            bad_raws.append(raw[:65_536])
            continue
        ids.extend(line_ids)
        ts.extend([line_ts] * len(line_ids))
        values.extend(line_values)
    sid = pa.array(ids, pa.string()).dictionary_encode().cast(SERIES_ID_TYPE)
    table = pa.Table.from_arrays(
        [sid, from_us_array(np.asarray(ts, dtype=np.int64)), pa.array(values, pa.float64())],
        schema=POINT_SCHEMA,
    )
    bad = quarantine_records(source, bad_lines, bad_fields, bad_reasons, bad_raws)
    return table, bad


def _escape_key(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def encode_lines(
    measurement: str,
    tags: Mapping[str, Sequence[str]],
    fields: Mapping[str, Sequence[float | None]],
    ts_us: Sequence[int] | np.ndarray,
) -> bytes:
    """Line protocol (ns timestamps) of columns: one line per row; a null or NaN field is left out.

    A row without any field is left out (line protocol needs one).
    """
    n = len(ts_us)
    if any(len(column) != n for column in (*tags.values(), *fields.values())):
        raise CodecError("line protocol columns differ in length")
    head = _escape_key(measurement).replace("=", "=")
    tag_names = [_escape_key(k) for k in tags]
    field_names = [_escape_key(k) for k in fields]
    tag_columns = list(tags.values())
    field_columns = list(fields.values())
    out: list[str] = []
    for row in range(n):
        parts = [
            f"{name}={value!r}"
            for name, column in zip(field_names, field_columns, strict=True)
            if (value := column[row]) is not None and not math.isnan(value)
        ]
        if not parts:
            continue
        key = ",".join(
            [head, *(f"{k}={_escape_key(str(c[row]))}" for k, c in zip(tag_names, tag_columns, strict=True))]
        )
        out.append(f"{key} {','.join(parts)} {int(ts_us[row]) * 1000}\n")
    return "".join(out).encode()
