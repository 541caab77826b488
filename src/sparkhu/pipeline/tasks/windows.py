"""Sliding-window transformation: (T inputs, N outputs) training windows on the regular grid.

Points are placed on the series' grid (``meta.period_s``; the grid is anchored on the first
point, each point snapped to the nearest slot, the last of several in one slot kept). A
window is ``T + N`` consecutive slots; windows with an empty slot or a NaN are dropped.
Windows are in chronological order; ``ts`` is the time of the last input (the forecast
origin). With ``stride > 1`` only origins whose slot number since the Unix epoch is a
multiple of ``stride`` are kept, so the same windows come out whatever the look-back.

The ``x`` and ``y`` columns are Arrow ``list<double>`` columns (``pd.ArrowDtype``), built
without a Python object per window; ``pyarrow.Table.from_pandas`` takes them as they are.

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> ts = pd.date_range("2024-01-01", periods=6, freq="min", tz="UTC").as_unit("us")
>>> frame = pd.DataFrame({"ts": ts, "value": [0.0, 1, 2, 3, 4, 5]})
>>> inp = TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c", period_s=60), ts[0], ts[-1])
>>> w = sliding(inp, inputs=3, outputs=2).frames["windows"]
>>> [(str(t.time()), list(x), list(y)) for t, x, y in zip(w["ts"], w["x"], w["y"])]
[('00:02:00', [0.0, 1.0, 2.0], [3.0, 4.0]), ('00:03:00', [1.0, 2.0, 3.0], [4.0, 5.0])]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks.decomposition import point_arrays
from sparkhu.timeaxis import US_PER_S, from_us_index

LIST_TYPE = pd.ArrowDtype(pa.list_(pa.float64()))
_MAX_GRID_FACTOR = 4


def sliding(inp: TaskInput, *, inputs: int = 60, outputs: int = 20, stride: int = 1) -> TaskOutput:
    """Cut ``points`` into windows of ``inputs`` then ``outputs`` slots; output frame ``windows``.

    Columns: ``ts`` (forecast origin), ``x`` (``inputs`` values), ``y`` (``outputs`` values).
    Skipped when the sampling period is unknown or the series is shorter than one window.
    """
    sid = inp.series_id
    for name, value in (("inputs", inputs), ("outputs", outputs), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PipelineError(f"{sid}: sliding needs a positive integer {name}, got {value!r}")
    frame = inp.frames.get("points")
    if frame is None:
        raise PipelineError(f"{sid}: sliding needs a 'points' frame, got {sorted(inp.frames)}")
    period_s = inp.meta.period_s
    if not period_s or period_s <= 0:
        return TaskOutput(skipped="sampling period unknown: run the regularity task first")
    ts_us, values = point_arrays(frame, sid)
    span = inputs + outputs
    if ts_us.size < span:
        return TaskOutput(skipped=f"{ts_us.size} point(s): shorter than one window of {span}")
    period_us = round(period_s * US_PER_S)
    slot = np.rint((ts_us - ts_us[0]) / period_us).astype(np.int64)
    size = int(slot[-1]) + 1
    if size > _MAX_GRID_FACTOR * ts_us.size + span:
        return TaskOutput(
            skipped=f"{ts_us.size} points spread over {size} slots of {period_s:g} s: too sparse"
        )
    grid = np.full(size, np.nan)
    grid[slot] = values  # sorted input: the last point of a slot wins
    bad = ~np.isfinite(grid)
    bad_count = np.concatenate([[0], np.cumsum(bad)])
    starts = np.arange(size - span + 1)
    clean = bad_count[starts + span] - bad_count[starts] == 0
    origin_slot = starts + inputs - 1
    if stride > 1:
        epoch_slot = origin_slot + int(np.rint(ts_us[0] / period_us))
        clean &= epoch_slot % stride == 0
    keep = starts[clean]
    view = sliding_window_view(grid, span)[keep]
    origin = ts_us[0] + (keep + inputs - 1) * period_us
    windows = pd.DataFrame(
        {
            "ts": from_us_index(origin),
            "x": _lists(view[:, :inputs]),
            "y": _lists(view[:, inputs:]),
        }
    )
    report = {
        "slots": size,
        "windows": int(keep.size),
        "dropped_with_gaps": int((bad_count[starts + span] - bad_count[starts] > 0).sum()),
        "inputs": inputs,
        "outputs": outputs,
        "stride": stride,
    }
    return TaskOutput(frames={"windows": windows}, report=report)


def _lists(matrix: np.ndarray) -> pd.arrays.ArrowExtensionArray:
    """Rows of a 2-D array as an Arrow ``list<double>`` array (one flat buffer plus offsets)."""
    rows, width = matrix.shape
    flat = pa.array(np.ascontiguousarray(matrix).ravel(), pa.float64())
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * width, pa.int32())
    return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(offsets, flat))
