"""Validation: the first task of the DAG, splitting raw points into valid ones and rejects.

:func:`validate` checks one series' raw frame against the point contract and the series
metadata. A frame without ``ts``/``value`` columns, or with columns of an impossible type
(numbers for ``ts``, booleans for ``value``), is a malformed input: it raises
:class:`~sparkhu.errors.PipelineError` and nothing is written. Otherwise each point is
checked and the first failing rule, in this order, rejects it:

* ``ts_missing`` (field ``ts``): no timestamp (null, or text that is not a time);
* ``value_not_number`` (``value``): text that is not a number;
* ``value_nan`` (``value``): missing value (null, NaN);
* ``value_inf`` (``value``): ±inf;
* ``value_below_min`` / ``value_above_max`` (``value``): outside ``meta.value_min`` ..
  ``meta.value_max`` (inclusive; with ``check_range``);
* ``unit_mismatch`` (``unit``): an optional ``unit`` column differs from ``meta.unit``
  (with ``check_unit``).

Rejects go out as the ``rejects`` frame (``ts``, ``value``, ``field``, ``reason``), which
the runner quarantines; a reject without a timestamp gets the interval's start. Points out
of order and timestamps that occur more than once are **flagged, not rejected**: they are
counted in the report, the valid points leave sorted by time (stable, so the arrival order
of duplicates is kept for :func:`~sparkhu.pipeline.tasks.dedup.deduplicate`, which keeps
the last one).

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> raw = pd.DataFrame({"ts": pd.to_datetime([0, 120, 60, 60, 180], unit="s", utc=True),
...                     "value": [float("nan"), 3.0, 1.0, 2.0, 9e9]})
>>> inp = TaskInput("a/b/c", {"points": raw}, SeriesMeta("a/b/c", value_max=100.0),
...                 raw.ts.min(), raw.ts.max())
>>> out = validate(inp)
>>> out.frames["points"]["value"].tolist(), out.frames["rejects"]["reason"].tolist()
([1.0, 2.0, 3.0], ['missing value (NaN)', 'above value_max=100.0'])
>>> out.report["out_of_order"], out.report["duplicate_ts"]
(2, 1)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks._frames import TS_DTYPE, frame_of, points_frame, require, table_frame
from sparkhu.timeaxis import to_us

TASK = "validate"
# code → (reason key, field); code 0 = valid
_RULES = (
    ("ok", ""),
    ("ts_missing", "ts"),
    ("value_not_number", "value"),
    ("value_nan", "value"),
    ("value_inf", "value"),
    ("value_below_min", "value"),
    ("value_above_max", "value"),
    ("unit_mismatch", "unit"),
)
REASONS = tuple(key for key, _ in _RULES[1:])


def validate(inp: TaskInput, *, check_range: bool = True, check_unit: bool = True) -> TaskOutput:
    """Split the ``points`` frame into valid points (sorted by ts) and ``rejects`` with reasons.

    Report: ``rows_in``, ``valid``, ``rejected``, ``by_reason`` (count per reason key),
    ``out_of_order`` (points earlier than a point before them) and ``duplicate_ts``
    (points whose timestamp an earlier point already had).
    """
    sid, meta = inp.series_id, inp.meta
    frame = frame_of(inp.frames, "points", sid, TASK)
    require(frame, ("ts", "value"), sid, TASK)
    if check_range and meta.value_min is not None and meta.value_max is not None:
        if meta.value_min > meta.value_max:
            raise PipelineError(
                f"{sid}: {TASK}: value_min={meta.value_min} > value_max={meta.value_max} "
                "in the series metadata; fix the range in the catalog"
            )
    ts = _timestamps(frame["ts"], sid)
    values, not_number = _values(frame["value"], sid)

    code = np.zeros(ts.size, dtype=np.int8)
    ts_missing = ts == np.iinfo(np.int64).min  # NaT
    nan = np.isnan(values)
    rules: list[np.ndarray] = [ts_missing, not_number, nan & ~not_number, np.isinf(values)]
    bounds = {}
    if check_range and meta.value_min is not None:
        rules.append(values < meta.value_min)
        bounds[5] = f"below value_min={meta.value_min}"
    else:
        rules.append(np.zeros(ts.size, dtype=bool))
    if check_range and meta.value_max is not None:
        rules.append(values > meta.value_max)
        bounds[6] = f"above value_max={meta.value_max}"
    else:
        rules.append(np.zeros(ts.size, dtype=bool))
    unit_text = ""
    if check_unit and meta.unit is not None and "unit" in frame.columns:
        units = frame["unit"].astype("string")
        rules.append((units.notna() & (units != meta.unit)).to_numpy(dtype=bool, na_value=False))
        unit_text = f"expected {meta.unit}"
    else:
        rules.append(np.zeros(ts.size, dtype=bool))
    for index in range(len(rules) - 1, -1, -1):  # the first failing rule wins
        code[rules[index]] = index + 1

    valid = code == 0
    vts, vvalues = ts[valid], values[valid]
    earlier_max = np.maximum.accumulate(vts) if vts.size else vts
    out_of_order = int(np.count_nonzero(vts[1:] < earlier_max[:-1]))
    if out_of_order:
        order = np.argsort(vts, kind="stable")
        vts, vvalues = vts[order], vvalues[order]
    duplicate_ts = int(np.count_nonzero(vts[1:] == vts[:-1]))

    messages = np.array(
        [
            "",
            "missing timestamp",
            "not a number",
            "missing value (NaN)",
            "infinite value",
            bounds.get(5, ""),
            bounds.get(6, ""),
            f"unit differs: {unit_text}",
        ],
        dtype=object,
    )
    fields = np.array([f for _, f in _RULES], dtype=object)
    bad = ~valid
    bad_ts = np.where(ts_missing[bad], to_us(inp.start), ts[bad])
    rejects = table_frame(
        bad_ts,
        value=values[bad],
        field=pd.array(fields[code[bad]], dtype="string"),
        reason=pd.array(messages[code[bad]], dtype="string"),
    )
    counts = np.bincount(code, minlength=len(_RULES))
    report = {
        "rows_in": int(ts.size),
        "valid": int(vts.size),
        "rejected": int(np.count_nonzero(bad)),
        "by_reason": {key: int(counts[i + 1]) for i, key in enumerate(REASONS) if counts[i + 1]},
        "out_of_order": out_of_order,
        "duplicate_ts": duplicate_ts,
    }
    return TaskOutput(frames={"points": points_frame(vts, vvalues), "rejects": rejects}, report=report)


def _timestamps(col: pd.Series, series_id: str) -> np.ndarray:
    """int64 µs (NaT as int64 min); text is parsed, unparseable text becomes NaT."""
    if col.dtype == TS_DTYPE:
        return np.asarray(col.array.asi8, dtype=np.int64)
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        parsed = col if getattr(col.dtype, "tz", None) is not None else col.dt.tz_localize("UTC")
    elif col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
        try:
            parsed = pd.to_datetime(col, errors="coerce", utc=True, format="ISO8601")
        except (TypeError, ValueError) as exc:
            raise PipelineError(f"{series_id}: {TASK}: ts cannot be read as timestamps: {exc}") from exc
    else:
        raise PipelineError(
            f"{series_id}: {TASK}: ts has dtype {col.dtype}; expected timestamps (datetime64[us, UTC])"
        )
    return np.asarray(parsed.dt.tz_convert("UTC").dt.as_unit("us").array.asi8, dtype=np.int64)


def _values(col: pd.Series, series_id: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and the mask of entries that were present but not numbers."""
    if pd.api.types.is_bool_dtype(col.dtype):
        raise PipelineError(f"{series_id}: {TASK}: value has dtype {col.dtype}; expected numbers (float64)")
    if pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.zeros(values.size, dtype=bool)
    if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
        numbers = pd.to_numeric(col, errors="coerce")
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, (np.isnan(values) & col.notna().to_numpy(dtype=bool))
    raise PipelineError(f"{series_id}: {TASK}: value has dtype {col.dtype}; expected numbers (float64)")
