"""Missing-value detection: the slots of a regular series where a point should be and is not.

:func:`detect` needs the series' sampling period (``meta.period_s``, recorded by the
regularity task); it skips series whose period is unknown or that were found irregular.

**Inside the data** (the original's "DivideAndRound" rule). For consecutive points with
``ratio = Δt / period``, a gap with ``ratio >= 1.7`` is divided into
``n = round(ratio + 0.2)`` equal sub-intervals (rounding half up), and the ``n − 1`` inner
division points are the missing slots: ``prev + i·Δt/n`` for ``i = 1 … n − 1``. So "n slots"
counts the sub-intervals of the gap, not the missing points: Δt = 2·period (one reading
lost) gives n = 2 and one missing point in the middle; the +0.2 moves the rounding
boundaries to x.3, so a gap of 2.25 periods still counts one point and one of 2.4 periods
two. Points are spread evenly between their neighbours, so clock jitter at the gap's ends
is shared out instead of piling up at one end.

**At the edges of the interval** ``[start, end)``: the grid continues from the first point
backwards (``first − k·period``) and from the last point forwards (``last + k·period``).
Before the first point, slots are kept down to ``start − 0.3·period`` (the earliest one is
clamped to ``start``); after the last, slots are kept while ``< end − 0.3·period``. This is
the same 1.7 threshold with a virtual neighbour one period before ``start`` and at ``end``,
and jitter of the edge points does not add or drop a slot. A look-back point before
``start`` makes the first gap an inner one.

Output ``slots``: one row per missing slot in ``[start, end)``: ``ts`` and ``gap_slots``
(how many slots its gap has: the imputation task shapes its back-test on these lengths).

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> secs = [60, 120, 300, 360, 480]  # missing 0 (edge), 180 and 240, 420, 540 (edge)
>>> frame = pd.DataFrame({"ts": pd.to_datetime(secs, unit="s", utc=True), "value": 1.0})
>>> out = detect(TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c", period_s=60.0, regular=True),
...                        pd.Timestamp(0, tz="UTC"), pd.Timestamp(600, unit="s", tz="UTC")))
>>> [int(t.timestamp()) for t in out.frames["slots"]["ts"]], out.frames["slots"]["gap_slots"].tolist()
([0, 180, 240, 420, 540], [1, 2, 2, 1, 1])
"""

from __future__ import annotations

import numpy as np

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks._frames import (
    frame_of,
    in_interval,
    sorted_points,
    table_frame,
)
from sparkhu.pipeline.tasks.imputation import impute
from sparkhu.timeaxis import US_PER_S, to_us

__all__ = ["detect", "impute", "missing_slots"]

TASK = "missing"
EDGE = 0.3  # 1.7 − 1: the threshold with a virtual neighbour one period beyond the edge


def detect(inp: TaskInput, *, threshold: float = 1.7, offset: float = 0.2) -> TaskOutput:
    """Mark the missing slots of ``[start, end)``; skipped without a period or for an irregular series.

    Report: ``slots``, ``gaps``, ``longest_gap`` (slots), ``before_first``/``after_last``
    (edge slots), ``points`` in the interval and ``completeness`` (points / (points + slots)).
    """
    sid, meta = inp.series_id, inp.meta
    if not threshold > 1 or not 0 <= offset < 1:
        raise PipelineError(
            f"{sid}: {TASK}: need threshold > 1 and 0 <= offset < 1, got {threshold}, {offset}"
        )
    if meta.period_s is None:
        return TaskOutput(skipped="sampling period unknown: run the regularity task first")
    if meta.regular is False:
        return TaskOutput(skipped=f"irregular series (period {meta.period_s} s): no slots to miss")
    if not meta.period_s > 0:
        raise PipelineError(f"{sid}: {TASK}: period_s={meta.period_s} in the metadata; expected > 0")
    frame = frame_of(inp.frames, "points", sid, TASK)
    ts, values = sorted_points(frame, sid, TASK)
    ts = ts[np.isfinite(values)]
    start, end = to_us(inp.start), to_us(inp.end)
    inside = int(np.count_nonzero(in_interval(ts, start, end)))
    if ts.size == 0 or inside == 0:
        return TaskOutput(skipped="no points in the interval (all missing)")
    slots, gap_slots, edges = missing_slots(
        ts, meta.period_s * US_PER_S, start, end, threshold=threshold, offset=offset
    )
    keep = in_interval(slots, start, end)
    slots, gap_slots = slots[keep], gap_slots[keep]
    report = {
        "slots": int(slots.size),
        "gaps": int(_runs(slots, meta.period_s * US_PER_S)) if slots.size else 0,
        "longest_gap": int(gap_slots.max()) if slots.size else 0,
        "before_first": edges[0],
        "after_last": edges[1],
        "points": inside,
        "completeness": round(inside / (inside + slots.size), 6),
    }
    return TaskOutput(frames={"slots": table_frame(slots, gap_slots=gap_slots)}, report=report)


def missing_slots(
    ts_us: np.ndarray,
    period_us: float,
    start_us: int,
    end_us: int,
    *,
    threshold: float = 1.7,
    offset: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Missing slots (µs, sorted), their gap's slot count, and the edge counts, for sorted unique µs ts.

    >>> ts = np.array([0, 60, 180, 400]) * US_PER_S  # 180 → 400: ratio 3.67, n = 4, three points
    >>> slots, sizes, edges = missing_slots(ts, 60e6, 0, 500_000_000)
    >>> (slots // US_PER_S).tolist(), sizes.tolist(), edges
    ([120, 235, 290, 345, 460], [1, 3, 3, 3, 1], (0, 1))
    """
    diffs = np.diff(ts_us)
    ratio = diffs / period_us
    gap = np.flatnonzero(ratio >= threshold)
    n = np.floor(ratio[gap] + offset + 0.5).astype(np.int64)  # sub-intervals, rounding half up
    m = n - 1  # missing points per gap
    owner = np.repeat(np.arange(gap.size), m)
    i = np.arange(owner.size) - np.repeat(np.cumsum(m) - m, m) + 1
    inner = ts_us[gap][owner] + np.rint(i * (diffs[gap][owner] / n[owner])).astype(np.int64)
    inner_sizes = m[owner]

    first, last = int(ts_us[0]), int(ts_us[-1])
    before = int(np.floor((first - start_us) / period_us + EDGE)) if first > start_us else 0
    k = np.arange(before, 0, -1)
    head = np.maximum(first - np.rint(k * period_us).astype(np.int64), start_us)
    after = max(int(np.ceil((end_us - last) / period_us - EDGE)) - 1, 0) if last < end_us else 0
    tail = last + np.rint(np.arange(1, after + 1) * period_us).astype(np.int64)
    slots = np.concatenate([head, inner, tail])
    sizes = np.concatenate([np.full(before, before), inner_sizes, np.full(after, after)]).astype(np.int64)
    return slots, sizes, (before, after)


def _runs(slots_us: np.ndarray, period_us: float) -> int:
    """Number of runs of consecutive slots (spacing under 1.5 periods)."""
    return int(np.count_nonzero(np.diff(slots_us) > 1.5 * period_us)) + 1
