"""IQR outliers: points outside ``Q1 − k·IQR .. Q3 + k·IQR`` are flagged and removed.

The original rule (k = 1.5, Tukey's fences). Quartiles are the linear-interpolation
quantiles of the finite values (pandas' and numpy's default). The flagged points leave the
``points`` output, so the missing-value task sees their slots as gaps and imputes them.

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> ts = pd.date_range("2024-01-01", periods=8, freq="min", tz="UTC").as_unit("us")
>>> frame = pd.DataFrame({"ts": ts, "value": [1.0, 2, 3, 2, 1, 2, 3, 90]})
>>> out = iqr(TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c"), ts[0], ts[-1]))
>>> out.frames["flags"][["value", "lower", "upper"]].values.tolist(), len(out.frames["points"])
([[90.0, -0.125, 4.875]], 7)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks.decomposition import point_arrays
from sparkhu.timeaxis import from_us_index

MIN_POINTS = 5


def iqr(inp: TaskInput, *, k: float = 1.5) -> TaskOutput:
    """Flag points outside ``Q1 − k·IQR .. Q3 + k·IQR``; return the others as ``points``.

    Outputs: ``points`` (``ts``, ``value``: the inliers, NaN values kept as they are) and
    ``flags`` (``ts``, ``value``, ``lower``, ``upper``: one row per outlier).
    """
    sid = inp.series_id
    if isinstance(k, bool) or not isinstance(k, int | float) or not k >= 0:
        raise PipelineError(f"{sid}: iqr needs k >= 0 (1.5 is Tukey's), got {k!r}")
    frame = inp.frames.get("points")
    if frame is None:
        raise PipelineError(f"{sid}: iqr needs a 'points' frame, got {sorted(inp.frames)}")
    ts_us, values = point_arrays(frame, sid)
    finite = np.isfinite(values)
    if finite.sum() < MIN_POINTS:
        return TaskOutput(skipped=f"{int(finite.sum())} finite point(s); IQR needs {MIN_POINTS}")
    q1, q3 = np.quantile(values[finite], [0.25, 0.75])
    if q1 == q3 and np.ptp(values[finite]) == 0:
        return TaskOutput(skipped="constant series: no outliers to find")
    lower, upper = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    flagged = finite & ((values < lower) | (values > upper))
    ts = from_us_index(ts_us)
    points = pd.DataFrame({"ts": ts[~flagged], "value": values[~flagged]})
    flags = pd.DataFrame(
        {
            "ts": ts[flagged],
            "value": values[flagged],
            "lower": np.full(int(flagged.sum()), lower),
            "upper": np.full(int(flagged.sum()), upper),
        }
    )
    report = {
        "points": int(finite.sum()),
        "outliers": int(flagged.sum()),
        "below": int((values[finite] < lower).sum()),
        "above": int((values[finite] > upper).sum()),
        "q1": float(q1),
        "q3": float(q3),
        "lower": float(lower),
        "upper": float(upper),
        "k": float(k),
    }
    return TaskOutput(frames={"points": points, "flags": flags}, report=report)
