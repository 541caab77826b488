"""De-duplication and resampling of one series onto its regular grid.

:func:`dedup_and_resample` is a pure per-series task (frame in, frame out), mapped over
series by an engine:

1. **Duplicates**: of several points with the same timestamp, the last one in the input
   wins (a re-delivered or corrected reading replaces the earlier one).
2. **Missing readings**: NaN values are dropped; the slot stays absent, like a slot no
   point fell into. Filling gaps is the imputation task's job, not this one's.
3. **Snapping**: every timestamp goes to a slot of the grid ``k * period`` (aligned on the
   Unix epoch, UTC). With ``how="nearest"`` (the default) a point belongs to the grid point
   nearest to it, i.e. slot ``g`` gathers ``[g - period/2, g + period/2)``: a meter that
   reports at 12:00:59.8 instead of 12:01:00 lands on 12:01, not on 12:00 beside the
   12:00:00.3 reading. ``how="floor"`` uses ``[g, g + period)`` (the bucket convention of
   time-series databases).
4. **Aggregation**: the value of a slot is the **mean** of the points in it: unbiased for
   jittered readings of the same quantity and, unlike "first" or "last", independent of
   arrival order.

The result has one row per occupied slot, sorted by ``ts``. Running it again on its own
output changes nothing.

>>> import pandas as pd
>>> frame = pd.DataFrame({
...     "ts": pd.to_datetime(["2024-01-01 00:00:01", "2024-01-01 00:00:01", "2024-01-01 00:00:59",
...                           "2024-01-01 00:01:02", "2024-01-01 00:03:00"], utc=True),
...     "value": [9.0, 1.0, 2.0, 4.0, float("nan")]})
>>> out = dedup_and_resample(frame, "a/b/c", period_s=60)
>>> [(str(t.time()), v) for t, v in zip(out["ts"], out["value"])]
[('00:00:00', 1.0), ('00:01:00', 3.0)]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkhu.errors import PipelineError

HOWS = ("nearest", "floor")


def dedup_and_resample(
    frame: pd.DataFrame, series_id: str, period_s: float = 60, how: str = "nearest"
) -> pd.DataFrame:
    """Drop duplicate timestamps (keep last), drop NaN, snap to the ``period_s`` grid, mean per slot.

    ``frame`` has columns ``ts`` (datetimes; naive ones are UTC) and ``value``. Returns a
    frame of ``ts`` (datetime64[us, UTC], slot time) and ``value`` (float64). Raises
    :class:`PipelineError` naming the series for a malformed frame or period.
    """
    if isinstance(period_s, bool) or not isinstance(period_s, int | float) or not period_s > 0:
        raise PipelineError(f"{series_id}: period_s must be a positive number of seconds, got {period_s!r}")
    if how not in HOWS:
        raise PipelineError(f"{series_id}: how must be one of {', '.join(HOWS)}, got {how!r}")
    missing = [c for c in ("ts", "value") if c not in getattr(frame, "columns", ())]
    if missing:
        raise PipelineError(f"{series_id}: frame lacks column(s) {', '.join(missing)}; expected ts, value")
    period_us = round(period_s * 1_000_000)
    if period_us < 1:
        raise PipelineError(f"{series_id}: period_s={period_s} is below one microsecond")
    try:
        ts = pd.to_datetime(frame["ts"], utc=True).dt.as_unit("us").astype("int64").to_numpy()
        values = frame["value"].to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"{series_id}: ts must be timestamps and value numbers: {exc}") from exc
    # last occurrence of each timestamp: the first one in the reversed array
    _, first_in_reversed = np.unique(ts[::-1], return_index=True)
    keep = ts.size - 1 - first_in_reversed  # ascending by ts
    ts, values = ts[keep], values[keep]
    observed = ~np.isnan(values)
    ts, values = ts[observed], values[observed]
    if how == "nearest":
        slots = np.floor_divide(ts + period_us // 2, period_us) * period_us
    else:
        slots = np.floor_divide(ts, period_us) * period_us
    if slots.size == 0:
        return _frame(slots, values)
    starts = np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]])
    counts = np.diff(np.r_[starts, slots.size])
    means = np.add.reduceat(values, starts) / counts
    return _frame(slots[starts], means)


def _frame(ts_us: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    ts = pd.to_datetime(ts_us.astype("int64"), unit="us", utc=True).as_unit("us")
    return pd.DataFrame({"ts": ts, "value": values.astype("float64")})
