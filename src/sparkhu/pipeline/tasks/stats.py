"""Descriptive statistics of one series, one row per UTC day of the interval.

:func:`describe` computes, over the points of each day in ``[start, end)``: ``count``,
``min``, ``max``, ``mean``, ``median``, ``q1`` and ``q3`` (linear interpolation between
order statistics, numpy's default), ``std`` (sample, ddof = 1), ``skewness`` and
``kurtosis`` (the bias-adjusted sample estimators G1 and excess G2, as pandas computes
them; NaN below 3 and 4 points or for a constant day), ``mode`` and ``cv`` (``std / |mean|``,
NaN when the mean is 0). The row's ``ts`` is the day's start (the interval's start for
the first day).

**Mode of continuous data.** Readings of a continuous quantity rarely repeat exactly, so
:func:`rounded_mode` bins them first: bins of the Freedman–Diaconis width
``2·IQR·n^(−1/3)``, taken down to a round step (1, 2 or 5 × 10^k), aligned on multiples of
the step; the mode is the median of the values in the fullest bin (ties: the lowest bin).
That median keeps a value that repeats exactly (a standby of 3 W among whole watts) where
the bin's centre would not, and is the bin's centre for continuous data. When over half
the values are equal (IQR = 0) the exact mode is returned.

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> frame = pd.DataFrame({"ts": pd.to_datetime(range(0, 300, 60), unit="s", utc=True),
...                       "value": [1.0, 2.0, 2.0, 3.0, 10.0]})
>>> inp = TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c"),
...                 pd.Timestamp(0, tz="UTC"), pd.Timestamp("1970-01-02", tz="UTC"))
>>> row = describe(inp).frames["stats"].iloc[0]
>>> int(row["count"]), float(row["median"]), float(row["mode"]), round(float(row["cv"]), 3)
(5, 2.0, 2.0, 1.013)
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks._frames import (
    frame_of,
    in_interval,
    sorted_points,
    table_frame,
)
from sparkhu.timeaxis import US_PER_DAY, to_us

TASK = "describe"
COLUMNS = (
    "count", "min", "max", "mean", "median", "q1", "q3", "std", "skewness", "kurtosis", "mode", "cv",
)  # fmt: skip


def describe(inp: TaskInput) -> TaskOutput:
    """One ``stats`` row per UTC day with points in ``[start, end)``; skipped when there are none."""
    frame = frame_of(inp.frames, "points", inp.series_id, TASK)
    ts, values = sorted_points(frame, inp.series_id, TASK)
    start, end = to_us(inp.start), to_us(inp.end)
    keep = in_interval(ts, start, end) & np.isfinite(values)
    ts, values = ts[keep], values[keep]
    if ts.size == 0:
        return TaskOutput(skipped="no finite points in the interval")
    day = ts // US_PER_DAY
    bounds = np.flatnonzero(np.r_[True, day[1:] != day[:-1], True])
    rows = [summary(values[a:b]) for a, b in itertools.pairwise(bounds.tolist())]
    row_ts = np.maximum(day[bounds[:-1]] * US_PER_DAY, start)
    columns = {name: np.array([row[name] for row in rows], dtype=np.float64) for name in COLUMNS}
    columns["count"] = columns["count"].astype(np.int64)
    report = {"days": len(rows), **{k: rows[-1][k] for k in ("count", "mean", "std", "min", "max")}}
    return TaskOutput(frames={"stats": table_frame(row_ts, **columns)}, report=report)


def summary(values: np.ndarray) -> dict[str, float]:
    """The statistics of :data:`COLUMNS` for one array of finite values (non-empty)."""
    xs = np.sort(values)
    n = xs.size
    mean = float(xs.mean())
    q1, median, q3 = _quantiles(xs, (0.25, 0.5, 0.75))
    dev = xs - mean
    dev2 = dev * dev
    m2 = float(dev2.mean())
    std = math.sqrt(m2 * n / (n - 1)) if n > 1 else math.nan
    skew = kurt = math.nan
    if m2 > 0 and n > 2:
        m3 = float(np.dot(dev2, dev)) / n
        skew = math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5
        if n > 3:
            g2 = float(np.dot(dev2, dev2)) / n / (m2 * m2) - 3.0
            kurt = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    return {
        "count": float(n),
        "min": float(xs[0]),
        "max": float(xs[-1]),
        "mean": mean,
        "median": median,
        "q1": q1,
        "q3": q3,
        "std": std,
        "skewness": skew,
        "kurtosis": kurt,
        "mode": rounded_mode(xs, presorted=True),
        "cv": std / abs(mean) if mean != 0 else math.nan,
    }


def rounded_mode(values: np.ndarray, *, presorted: bool = False) -> float:
    """The mode of continuous data: the median of the fullest histogram bin (Freedman–Diaconis width).

    >>> rounded_mode(np.array([1.001, 1.002, 5.0, 9.0]))
    1.0015
    >>> rounded_mode(np.array([3.0, 3.0, 120.0, 7.0]))
    3.0
    """
    xs = values if presorted else np.sort(values)
    n = xs.size
    if n == 0:
        return math.nan
    q1, q3 = _quantiles(xs, (0.25, 0.75))
    width = 2.0 * (q3 - q1) / n ** (1 / 3)
    if width > 0:
        scale = 10.0 ** math.floor(math.log10(width))
        step = scale * max(m for m in (1.0, 2.0, 5.0) if m * scale <= width)
        keys = np.floor(xs / step)
    else:  # over half the values equal: the exact mode
        keys = xs
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    fullest = int(np.argmax(np.diff(bounds)))
    return float(np.median(xs[bounds[fullest] : bounds[fullest + 1]]))


def _quantiles(xs: np.ndarray, probs: tuple[float, ...]) -> list[float]:
    """Quantiles of sorted values, linear interpolation between order statistics (numpy's default)."""
    at = np.asarray(probs) * (xs.size - 1)
    low = np.floor(at).astype(np.int64)
    high = np.minimum(low + 1, xs.size - 1)
    return [float(v) for v in xs[low] + (xs[high] - xs[low]) * (at - low)]
