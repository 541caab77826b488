"""Regularity analysis: the sampling period of a series and whether it keeps to it.

:func:`analyse` looks at the timestamp differences Δt of the last ``window_days`` (60 by
default, the original's window) up to the end of each UTC day of the interval.

**Period.** The original clustered the Δt with MeanShift and took the floored mean of the
largest cluster (about a second for 10,000 Δt). Here the same idea runs in about a
millisecond: the Δt are binned on a log scale (bins 5 % wide, so a 60 s period and a 120 s
gap fall far apart while clock jitter stays together); the densest run of three adjacent
bins is the dominant cluster and its median a first period. That estimate is then refined
(a few fixed-point steps) over every Δt within ``tolerance`` of a multiple ``k·period``, as
total time over total periods, ``Σ Δt / Σ k``: gaps count too, and timestamp jitter cancels (the errors of
consecutive Δt telescope) instead of biasing a truncated cluster. The period is finally
rounded to the second when within 0.2 % of a whole second (else to the millisecond): the
original's floor to the second, without turning 59.999 s into 59 s or 1.5 s into 1 s.

**Decision.** Each Δt is compared with its nearest multiple ``k·period`` (k ≥ 1); its
residual is ``e = (Δt − k·period) / period`` in [−0.5, 0.5]. ``periodic_error`` is the
fraction of Δt with ``|e| > tolerance`` (0.25, a quarter period off every multiple): 0 for
a perfect clock whatever its gaps, under 0.05 for a minutely clock with 5 s of Gaussian
jitter on every timestamp, about 0.5 or more for a Poisson clock (whose residuals spread
over the whole range). The series is **regular** when ``periodic_error <= max_error``
(0.1: at least 90 % of the intervals sit on the period grid). ``rms_residual`` (RMS of e)
and ``dominant_share`` (the share of Δt in the dominant cluster) are reported too.

Fewer than ``min_points`` (5) points in the window give no decision (the day is skipped).

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> secs = np.r_[np.arange(0, 3000, 60), np.arange(3600, 6000, 60)] + np.tile([0, 2, -1], 90)[:90]
>>> frame = pd.DataFrame({"ts": pd.to_datetime(secs, unit="s", utc=True), "value": 1.0})
>>> out = analyse(TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c"),
...                         pd.Timestamp(0, tz="UTC"), pd.Timestamp("1970-01-02", tz="UTC")))
>>> out.metadata
{'period_s': 60.0, 'regular': True, 'periodic_error': 0.0}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks._frames import (
    frame_of,
    sorted_points,
    table_frame,
)
from sparkhu.timeaxis import US_PER_DAY, US_PER_S, to_us

TASK = "regularity"
BIN_WIDTH = math.log(1.05)
ROUND_TO_SECOND = 0.002
REFINE_STEPS = 8


def analyse(
    inp: TaskInput,
    *,
    window_days: float = 60,
    tolerance: float = 0.25,
    max_error: float = 0.1,
    min_points: int = 5,
) -> TaskOutput:
    """Estimate ``period_s`` and decide ``regular``; one ``regularity`` row per UTC day of the interval.

    Metadata (from the interval's last day): ``period_s``, ``regular``, ``periodic_error``.
    """
    sid = inp.series_id
    if not window_days > 0 or not 0 < tolerance < 0.5 or not 0 <= max_error <= 1:
        raise PipelineError(
            f"{sid}: {TASK}: need window_days > 0, 0 < tolerance < 0.5 and 0 <= max_error <= 1, "
            f"got {window_days}, {tolerance}, {max_error}"
        )
    frame = frame_of(inp.frames, "points", sid, TASK)
    ts, _ = sorted_points(frame, sid, TASK)
    start, end = to_us(inp.start), to_us(inp.end)
    window = round(window_days * US_PER_DAY)
    first_day = start // US_PER_DAY
    day_starts = np.maximum(np.arange(first_day, -(-end // US_PER_DAY)) * US_PER_DAY, start)
    rows: list[dict[str, Any]] = []
    for day_start in day_starts.tolist():
        day_end = min(day_start - day_start % US_PER_DAY + US_PER_DAY, end)
        a, b = np.searchsorted(ts, [day_end - window, day_end])
        if b - a < min_points:
            continue
        found = decide(ts[a:b], tolerance=tolerance, max_error=max_error)
        if found is not None:
            rows.append({"ts": day_start, **found})
    if not rows:
        return TaskOutput(
            skipped=f"fewer than {min_points} distinct timestamps in the {window_days}-day window"
        )
    frame_out = table_frame(
        np.array([r["ts"] for r in rows], dtype=np.int64),
        period_s=np.array([r["period_s"] for r in rows], dtype=np.float64),
        regular=np.array([r["regular"] for r in rows], dtype=bool),
        periodic_error=np.array([r["periodic_error"] for r in rows], dtype=np.float64),
        rms_residual=np.array([r["rms_residual"] for r in rows], dtype=np.float64),
        dominant_share=np.array([r["dominant_share"] for r in rows], dtype=np.float64),
        points=np.array([r["points"] for r in rows], dtype=np.int64),
    )
    last = rows[-1]
    metadata = {k: last[k] for k in ("period_s", "regular", "periodic_error")}
    report = {k: v for k, v in last.items() if k != "ts"}
    return TaskOutput(frames={"regularity": frame_out}, report=report, metadata=metadata)


def estimate_period(diffs_us: np.ndarray, *, tolerance: float = 0.25) -> tuple[float, float]:
    """``(period_s, dominant_share)`` from positive Δt in µs (see the module's docstring).

    >>> estimate_period(np.array([60, 61, 59, 60, 120, 180, 60, 600]) * US_PER_S)
    (60.0, 0.625)
    """
    bins = np.floor(np.log(diffs_us.astype(np.float64)) / BIN_WIDTH).astype(np.int64)
    low = int(bins.min())
    counts = np.pad(np.bincount(bins - low), 1)
    dense = counts[:-2] + counts[1:-1] + counts[2:]  # each bin with its two neighbours
    cluster = np.abs(bins - (int(np.argmax(dense)) + low)) <= 1
    period = float(np.median(diffs_us[cluster]))
    for _ in range(REFINE_STEPS):  # refine on every Δt near a multiple: total time over total periods
        ratio = diffs_us / period
        k = np.maximum(np.rint(ratio), 1.0)
        on = np.abs(ratio - k) <= tolerance
        previous, period = period, float(diffs_us[on].sum() / k[on].sum())
        if abs(period - previous) <= 1e-6 * period:
            break
    period_s = period / US_PER_S
    whole = round(period_s)
    period_s = (
        float(whole)
        if whole >= 1 and abs(period_s - whole) <= ROUND_TO_SECOND * period_s
        else round(period_s, 3)
    )
    return max(period_s, 1e-6), float(np.count_nonzero(cluster)) / diffs_us.size


def decide(ts_us: np.ndarray, *, tolerance: float = 0.25, max_error: float = 0.1) -> dict[str, Any] | None:
    """Period and decision for sorted µs timestamps; None with fewer than 4 positive Δt."""
    diffs = np.diff(ts_us)
    diffs = diffs[diffs > 0]
    if diffs.size < 4:
        return None
    period_s, share = estimate_period(diffs, tolerance=tolerance)
    ratio = diffs / (period_s * US_PER_S)
    k = np.maximum(np.rint(ratio), 1.0)
    residual = ratio - k
    error = float(np.count_nonzero(np.abs(residual) > tolerance)) / diffs.size
    return {
        "period_s": period_s,
        "regular": bool(error <= max_error),
        "periodic_error": round(error, 6),
        "rms_residual": round(float(np.sqrt(np.mean(residual * residual))), 6),
        "dominant_share": round(share, 6),
        "points": int(diffs.size + 1),
    }
