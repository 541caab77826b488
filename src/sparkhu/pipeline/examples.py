"""Tiny tasks for examples, tests of the runner and its overhead benchmark.

They are module-level (so worker processes can import them) and cost next to nothing, so a
run of them measures the runner itself: reading, grouping, mapping, writing and recording.

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> frame = pd.DataFrame({"ts": pd.to_datetime([0, 60], unit="s", utc=True), "value": [1.0, 2.0]})
>>> inp = TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c"), frame.ts[0], frame.ts[1])
>>> scale(inp, factor=3.0).frames["points"]["value"].tolist()
[3.0, 6.0]
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from sparkhu.pipeline.base import TaskInput, TaskOutput


def passthrough(inp: TaskInput) -> TaskOutput:
    """Copy the ``points`` input to the ``points`` output."""
    points = inp.frames["points"]
    return TaskOutput(frames={"points": points}, report={"points": len(points)})


def scale(inp: TaskInput, factor: float = 2.0) -> TaskOutput:
    """Multiply the values of ``points`` by ``factor``."""
    points = inp.frames["points"]
    return TaskOutput(
        frames={"points": points.assign(value=points["value"] * factor)}, report={"points": len(points)}
    )


def daily_mean(inp: TaskInput) -> TaskOutput:
    """One row per UTC day: ``ts`` (midnight), ``mean`` and ``count`` (a table, not points)."""
    points = inp.frames["points"]
    day = points["ts"].dt.floor("D")
    table = points.groupby(day)["value"].agg(["mean", "count"]).reset_index(names="ts")
    return TaskOutput(frames={"stats": table}, report={"days": len(table)})


def worker_pid(inp: TaskInput) -> TaskOutput:
    """``points`` with the value replaced by the process id that ran the function."""
    points = inp.frames["points"]
    return TaskOutput(frames={"points": points.assign(value=float(os.getpid()))})


def fail_first_call(inp: TaskInput, counter: str, suffix: str = "bad") -> TaskOutput:
    """Copy ``points``, but raise on the first call for a series ending in ``suffix``.

    Calls are counted in the file ``counter`` (worker processes share it): a transient
    failure, for tests of retries.
    """
    if inp.series_id.endswith(suffix):
        path = Path(counter)
        calls = int(path.read_text()) if path.exists() else 0
        path.write_text(str(calls + 1))
        if calls == 0:
            raise RuntimeError(f"transient failure of {inp.series_id}")
    return TaskOutput(frames={"points": inp.frames["points"]})


def mean_of_all(frames: dict[str, pd.DataFrame]) -> TaskOutput:
    """A ``scope="all"`` task: per series and day, the mean of ``points`` (with ``series_id``)."""
    points = frames["points"]
    day = points["ts"].dt.floor("D")
    table = points.groupby([points["series_id"], day])["value"].mean().reset_index()
    return TaskOutput(frames={"means": table}, report={"series": int(points["series_id"].nunique())})
