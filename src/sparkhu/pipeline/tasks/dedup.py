"""Deduplication: one point per timestamp, the last one delivered wins.

:func:`deduplicate` keeps, of several points with the same ``ts``, the **last** in the input
order (a re-delivered or corrected reading replaces the earlier one); the sort is stable, so
an input that :func:`~sparkhu.pipeline.tasks.validation.validate` already sorted keeps its
arrival order among equal timestamps. The report counts the removed points, the timestamps
that had duplicates and the removed points whose value differed from the kept one
(``conflicting``: a correction rather than a repeat).

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> frame = pd.DataFrame({"ts": pd.to_datetime([0, 0, 0, 60], unit="s", utc=True),
...                       "value": [1.0, 1.0, 2.0, 4.0]})
>>> out = deduplicate(TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c"), frame.ts[0], frame.ts[3]))
>>> out.frames["points"]["value"].tolist(), out.report
([2.0, 4.0], {'rows_in': 4, 'removed': 2, 'duplicate_ts': 1, 'conflicting': 2})
"""

from __future__ import annotations

import numpy as np

from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks._frames import frame_of, points_frame, sorted_points

TASK = "dedup"


def deduplicate(inp: TaskInput) -> TaskOutput:
    """Keep the last point per timestamp; report ``removed``, ``duplicate_ts`` and ``conflicting``."""
    frame = frame_of(inp.frames, "points", inp.series_id, TASK)
    ts, values = sorted_points(frame, inp.series_id, TASK)
    n = ts.size
    last = np.ones(n, dtype=bool)
    last[:-1] = ts[1:] != ts[:-1]
    removed = n - int(np.count_nonzero(last))
    report = {"rows_in": n, "removed": removed, "duplicate_ts": 0, "conflicting": 0}
    if removed:
        group = np.cumsum(np.r_[False, last[:-1]])
        kept = values[last][group]
        dropped = ~last
        differs = (values != kept) & ~(np.isnan(values) & np.isnan(kept))
        first_of_group = np.r_[True, last[:-1]]
        report["duplicate_ts"] = int(np.count_nonzero(first_of_group & dropped))
        report["conflicting"] = int(np.count_nonzero(differs & dropped))
        ts, values = ts[last], values[last]
    return TaskOutput(frames={"points": points_frame(ts, values)}, report=report)
