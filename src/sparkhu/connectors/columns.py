"""Columns of text or typed cells turned into points, with a reason for every bad cell.

The file source parses a chunk of CSV (or a Parquet row group) into a table, then
:func:`to_points` makes points of it and lists the bad cells: a row's timestamp that is
missing, malformed or out of range (:data:`~sparkhu.series.POINT_RULES`) sets the whole row
aside; a value that is not a number or not finite sets aside only that cell. Missing values
(nulls, ``NaN``) are dropped, not bad.
All of it is vectorised: regular expressions and casts over whole columns; a cast that fails
is retried on halves to find the failing cells.

>>> import pyarrow as pa
>>> layout = Layout(["ts", "A"], "ts", False, ["A"], pa.array(["x/y/A"]))
>>> table = pa.table({"ts": ["0", "60", "x"], "A": ["1.5", "abc", "2"]})
>>> points, bad = to_points(table, layout, "s", "f.csv")
>>> points["value"].to_pylist(), bad.rows, bad.fields, bad.reasons
([1.5], [1, 2], ['A', 'ts'], ['not a number', 'malformed timestamp; expected seconds since 1970-01-01 UTC'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import ConnectorError
from sparkhu.series import BAD_ID, BAD_TS, BAD_VALUE, POINT_SCHEMA, SERIES_ID_TYPE, is_series_id
from sparkhu.timeaxis import (
    EPOCH_UNITS_US,
    POINT_END_US,
    POINT_MIN_US,
    TS_TYPE,
    from_us_array,
    in_point_range,
)

NULL_VALUES = ["", "NaN", "nan", "NA", "N/A", "null", "NULL"]
_NUM_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(?i:inf|infinity|nan)$"
_ISO_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)?$"
_AWARE_RE = r"[T ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"  # an offset after a time
TS_EXPECTED = {
    "s": "seconds since 1970-01-01 UTC",
    "ms": "milliseconds since 1970-01-01 UTC",
    "us": "microseconds since 1970-01-01 UTC",
    "iso": "ISO-8601 such as 2012-04-01T07:00:00Z",
}


@dataclass(frozen=True)
class Layout:
    """How one file's columns map to points (from its header or Parquet schema)."""

    names: list[str]
    ts: str
    long: bool
    fields: list[str]  # wide: value columns
    ids: pa.Array  # wide: their series ids


@dataclass
class BadCells:
    """Bad cells of a parsed table: row indices, field names and reasons, in step."""

    rows: list[int]
    fields: list[str]
    reasons: list[str]


_TS_REASONS = ("", "missing timestamp", "malformed timestamp; expected {}", BAD_TS)
_VALUE_REASONS = ("", "not a number", BAD_VALUE)


def to_points(table: pa.Table, layout: Layout, unit: str, where: str) -> tuple[pa.Table, BadCells]:
    """Typed or text columns → points, and the bad cells (row, field, reason)."""
    n = table.num_rows
    ts_us, ts_code = parse_timestamps(table.column(layout.ts).combine_chunks(), unit, layout.ts, where)
    bad = BadCells([], [], [])
    for r in np.flatnonzero(ts_code):
        bad.rows.append(int(r))
        bad.fields.append(layout.ts)
        bad.reasons.append(_TS_REASONS[ts_code[r]].format(TS_EXPECTED[unit]))
    row_ok = ts_code == 0
    if layout.long:
        ids = table.column("series_id").combine_chunks()
        ids = ids if pa.types.is_dictionary(ids.type) else pc.dictionary_encode(ids.cast(pa.string()))
        valid_id = np.array([is_series_id(s) for s in ids.dictionary.to_pylist()] + [False], dtype=bool)
        codes = ids.indices.fill_null(len(ids.dictionary)).to_numpy(zero_copy_only=False)
        values, value_code = parse_numbers(table.column("value").combine_chunks())
        id_bad = ~valid_id[codes]
        for r in np.flatnonzero(row_ok & (id_bad | (value_code > 0))):
            bad.rows.append(int(r))
            if id_bad[r]:
                missing = codes[r] == len(ids.dictionary)
                bad.fields.append("series_id")
                bad.reasons.append("missing series id" if missing else BAD_ID)
            else:
                bad.fields.append("value")
                bad.reasons.append(_VALUE_REASONS[value_code[r]])
        keep = row_ok & ~id_bad & ~np.isnan(values)
        dictionary, codes = ids.dictionary, codes.astype(np.int32)
    else:
        k = len(layout.fields)
        matrix, cell_code = np.empty((k, n)), np.empty((k, n), dtype=np.uint8)
        for j, name in enumerate(layout.fields):
            matrix[j], cell_code[j] = parse_numbers(table.column(name).combine_chunks())
        if cell_code.any():
            for j, r in zip(*np.nonzero(cell_code * row_ok), strict=True):
                bad.rows.append(int(r))
                bad.fields.append(layout.fields[j])
                bad.reasons.append(_VALUE_REASONS[cell_code[j, r]])
        values, ts_us = matrix.ravel(), np.tile(ts_us, k)
        keep = ~np.isnan(values)
        if not row_ok.all():
            keep &= np.tile(row_ok, k)
        dictionary, codes = layout.ids, np.repeat(np.arange(k, dtype=np.int32), n)
    if not keep.all():
        values, ts_us, codes = values[keep], ts_us[keep], codes[keep]
    ids_out = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), dictionary).cast(SERIES_ID_TYPE)
    ts = from_us_array(ts_us)
    points = pa.Table.from_arrays([ids_out, ts, pa.array(values, pa.float64())], schema=POINT_SCHEMA)
    order = np.argsort(np.asarray(bad.rows, dtype=np.int64), kind="stable")
    return points, BadCells(
        [bad.rows[o] for o in order], [bad.fields[o] for o in order], [bad.reasons[o] for o in order]
    )


def parse_numbers(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Floats (NaN = missing or bad) and a code per cell (index into ``_VALUE_REASONS``)."""
    code = np.zeros(len(col), dtype=np.uint8)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        trimmed = pc.utf8_trim_whitespace(col)
        looks = pc.fill_null(pc.match_substring_regex(trimmed, _NUM_RE), True).to_numpy(zero_copy_only=False)
        values, failed = _cast_bisect(pc.if_else(pa.array(looks), trimmed, None), pa.float64())
        code[~looks | failed] = 1
    elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
        values = col.cast(pa.float64())
    else:
        values = pa.nulls(len(col), pa.float64())
        code[col.is_valid().to_numpy(zero_copy_only=False)] = 1
    out = values.to_numpy(zero_copy_only=False)
    inf = np.isinf(out)
    if inf.any() or code.any():
        code[inf] = 2
        out = out.copy()
        out[code > 0] = np.nan
    return out, code


def parse_timestamps(col: pa.Array, unit: str, name: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """µs since 1970 UTC and a code per cell (index into ``_TS_REASONS``)."""
    code = np.zeros(len(col), dtype=np.uint8)
    factor = EPOCH_UNITS_US.get(unit, 1)
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        typ = col.type if pa.types.is_timestamp(col.type) else pa.timestamp("ms")
        stamps = col.cast(typ)
        # range-checked in floats first: seconds of year 300,000 would overflow µs in int64
        float_us = stamps.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        float_us *= {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}[typ.unit]
        if stamps.null_count == 0 and in_point_range(float_us).all():
            us = pc.cast(stamps, pa.timestamp("us", typ.tz), safe=False).cast(pa.int64())
            return us.to_numpy(), code
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        if unit == "iso":
            trimmed = pc.utf8_trim_whitespace(col)
            float_us = np.full(len(col), np.nan)
            looks = pc.fill_null(pc.match_substring_regex(trimmed, _ISO_RE), False).to_numpy(
                zero_copy_only=False
            )
            aware = pc.fill_null(pc.match_substring_regex(trimmed, _AWARE_RE), False).to_numpy(
                zero_copy_only=False
            )
            for mask, typ in ((looks & aware, TS_TYPE), (looks & ~aware, pa.timestamp("us"))):
                if mask.any():
                    parsed, failed = _cast_bisect(pc.if_else(pa.array(mask), trimmed, None), typ)
                    got = parsed.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
                    float_us[mask & ~failed] = got[mask & ~failed]
        else:  # decimals allowed; float64 is exact for integers up to 2**53 µs (year 2255)
            float_us = parse_numbers(col)[0] * factor
    elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        if unit == "iso":
            raise ConnectorError(f"{where}: column {name} holds numbers; set ts_unit to s, ms or us")
        raw = col.to_numpy(zero_copy_only=False)
        if (
            pa.types.is_integer(col.type)
            and col.null_count == 0
            and raw.min(initial=0) >= -(-POINT_MIN_US // factor)
            and raw.max(initial=0) < POINT_END_US // factor
        ):
            return raw.astype(np.int64) * factor, code
        float_us = raw.astype(np.float64) * factor
    else:
        raise ConnectorError(f"{where}: column {name} of type {col.type} is not a timestamp; set ts_column")
    code[~np.isfinite(float_us)] = 2
    code[np.isfinite(float_us) & ~in_point_range(float_us)] = 3
    code[~col.is_valid().to_numpy(zero_copy_only=False)] = 1
    ts = np.where(code == 0, np.rint(np.nan_to_num(float_us)), 0).astype(np.int64)
    return ts, code


def _cast_bisect(arr: pa.Array, typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cast, and where the cast fails find the failing cells by halving: (result, failed mask)."""
    try:
        return pc.cast(arr, typ), np.zeros(len(arr), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(arr) == 1:
            return pa.nulls(1, typ), np.ones(1, dtype=bool)
    left, lbad = _cast_bisect(arr.slice(0, len(arr) // 2), typ)
    right, rbad = _cast_bisect(arr.slice(len(arr) // 2), typ)
    return pa.concat_arrays([left, right]), np.concatenate([lbad, rbad])
