"""Frame helpers shared by the cleaning tasks: µs arrays in, frames of the contract out.

Tasks compute on int64 microsecond timestamps and float64 values (numpy); these helpers
convert at the edges and raise :class:`~sparkhu.errors.PipelineError` naming the series,
the task and the frame for a malformed input.

>>> import pandas as pd
>>> frame = points_frame(np.array([0, 60_000_000]), np.array([1.0, 2.0]))
>>> str(frame["ts"].dtype), ts_us(frame, "a/b/c", "t").tolist()
('datetime64[us, UTC]', [0, 60000000])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sparkhu.errors import PipelineError
from sparkhu.timeaxis import from_us_index, to_us_array

TS_DTYPE = pd.DatetimeTZDtype("us", "UTC")


def frame_of(frames: dict[str, pd.DataFrame], name: str, series_id: str, task: str) -> pd.DataFrame:
    """The input frame ``name``; raises :class:`PipelineError` when the runner did not provide it."""
    frame = frames.get(name)
    if not isinstance(frame, pd.DataFrame):
        raise PipelineError(
            f"{series_id}: {task}: input frame {name!r} is missing (got {sorted(frames)}); "
            f"bind it in the task's inputs"
        )
    return frame


def require(frame: pd.DataFrame, columns: tuple[str, ...], series_id: str, task: str) -> None:
    """Raise :class:`PipelineError` when ``frame`` lacks one of ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PipelineError(
            f"{series_id}: {task}: frame lacks column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )


def ts_us(frame: pd.DataFrame, series_id: str, task: str) -> np.ndarray:
    """The ``ts`` column as int64 µs since the epoch (naive datetimes are UTC)."""
    require(frame, ("ts",), series_id, task)
    col = frame["ts"]
    if col.dtype == TS_DTYPE:
        return np.asarray(col.array.asi8, dtype=np.int64)
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        raise PipelineError(f"{series_id}: {task}: ts has dtype {col.dtype}; expected datetime64[us, UTC]")
    return to_us_array(col)


def values_of(frame: pd.DataFrame, series_id: str, task: str) -> np.ndarray:
    """The ``value`` column as float64 (missing → NaN)."""
    require(frame, ("value",), series_id, task)
    col = frame["value"]
    if col.dtype == np.float64:
        return col.to_numpy()
    if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        raise PipelineError(f"{series_id}: {task}: value has dtype {col.dtype}; expected float64")
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def sorted_points(frame: pd.DataFrame, series_id: str, task: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ts_us, values)`` sorted by time (stable), whatever the frame's order."""
    ts, values = ts_us(frame, series_id, task), values_of(frame, series_id, task)
    if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
    return ts, values


def points_frame(ts: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """A point frame (``ts`` datetime64[us, UTC], ``value`` float64) from µs and values."""
    return pd.DataFrame({"ts": from_us_index(ts), "value": np.asarray(values, dtype=np.float64)})


def table_frame(ts: np.ndarray, **columns: Any) -> pd.DataFrame:
    """A frame with a ``ts`` column (from µs) and the given columns."""
    return pd.DataFrame({"ts": from_us_index(ts), **columns})


def in_interval(ts: np.ndarray, start_us: int, end_us: int) -> np.ndarray:
    """Boolean mask of ``start <= ts < end``."""
    return (ts >= start_us) & (ts < end_us)
