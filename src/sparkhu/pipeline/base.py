"""The task contract of the cleaning DAG.

A task is a pure function of one series' frames (or, with ``scope="all"``, of every series
at once): it knows nothing of storage or engines. The runner (:mod:`sparkhu.pipeline.runner`)
reads the task's input datasets from the lake for the interval (plus the task's look-back),
groups them by series, maps the function over series with an engine, writes the outputs,
records a run per task and series in the catalog and updates the series metadata.

Frames: point frames have columns ``ts`` (``datetime64[us, UTC]``) and ``value`` (float64),
sorted by ``ts``; other frames have a ``ts`` column plus their own columns. Every output frame
has a ``ts`` column: the runner keeps only rows with ``start <= ts < end`` (the interval being
produced) and replaces those day partitions, so re-runs are idempotent.

Series metadata (:class:`SeriesMeta`) is data too: a task whose ``TaskOutput.metadata`` other
tasks read declares it as a *metadata dataset* (``meta_output``, e.g. ``sampling`` for the
period and regularity the ``regularity`` task decides) and its readers name it in
``meta_inputs``, so the DAG orders them and checks the dependency like any other.

>>> import pandas as pd
>>> def double(inp: TaskInput, factor: float = 2.0) -> TaskOutput:
...     points = inp.frames["points"]
...     return TaskOutput(frames={"points": points.assign(value=points["value"] * factor)})
>>> task = Task("double", double, inputs={"points": "deduped"}, outputs={"points": "doubled"})
>>> frame = pd.DataFrame({"ts": pd.to_datetime([0, 60], unit="s", utc=True), "value": [1.0, 2.0]})
>>> inp = TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c"), frame.ts[0], frame.ts[1])
>>> task.fn(inp, **task.params).frames["points"]["value"].tolist()
[2.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import pandas as pd


@dataclass(frozen=True)
class SeriesMeta:
    """What the catalog knows of a series when the task runs (refreshed between tasks)."""

    series_id: str
    unit: str | None = None
    period_s: float | None = None
    regular: bool | None = None
    value_min: float | None = None
    value_max: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Metadata earlier tasks recorded (e.g. ``seasonal_periods``, normalisation parameters)."""

    def updated(self, fields: Mapping[str, Any]) -> SeriesMeta:
        """This metadata with a task's ``metadata`` output applied, as the catalog records it:
        the keys of :data:`CATALOG_FIELDS` replace those fields, the others go to ``extra``.

        >>> meta = SeriesMeta("a/b/c", unit="W").updated({"period_s": 60.0, "season": [1440]})
        >>> meta.unit, meta.period_s, meta.extra
        ('W', 60.0, {'season': [1440]})
        """
        direct = {k: v for k, v in fields.items() if k in CATALOG_FIELDS}
        extra = {k: v for k, v in fields.items() if k not in direct}
        return replace(self, **direct, extra={**self.extra, **extra})


CATALOG_FIELDS = ("period_s", "regular", "unit", "value_min", "value_max")
"""Metadata keys that update the catalog's columns of a series; the others go to ``SeriesMeta.extra``."""


@dataclass
class TaskInput:
    """One series' inputs for one interval ``[start, end)``; frames may reach back by the look-back."""

    series_id: str
    frames: dict[str, pd.DataFrame]
    meta: SeriesMeta
    start: pd.Timestamp
    end: pd.Timestamp


@dataclass
class TaskOutput:
    """What a task produced for one series (or, for ``scope="all"``, for all of them)."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    """JSON-able figures for the task's report (counts, scores, chosen strategy...)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Series metadata to record: ``period_s`` and ``regular`` update the catalog's columns,
    other keys go to ``SeriesMeta.extra``."""
    skipped: str | None = None
    """Why this series was not processed (too few points, constant, irregular...); outputs then stay empty."""


@dataclass(frozen=True)
class Task:
    """A node of the DAG: a module-level (picklable) function and the datasets it reads and writes.

    The function itself, not a name to import: ``Task("dedup", dedup.deduplicate, ...)``.
    """

    name: str
    fn: Callable[..., TaskOutput]
    inputs: Mapping[str, str]
    """Input name (the key in ``TaskInput.frames``) → dataset name."""
    outputs: Mapping[str, str]
    """Output name (the key in ``TaskOutput.frames``) → dataset name."""
    params: Mapping[str, Any] = field(default_factory=dict)
    lookback: timedelta = timedelta(0)
    """History before the interval the function needs (e.g. 60 days for regularity)."""
    min_points: int = 5
    """Series with fewer input points are skipped with the reason recorded."""
    scope: Literal["series", "all"] = "series"
    """``all``: ``fn(frames_with_series_id_column: dict[str, DataFrame], **params) -> TaskOutput``."""
    meta_inputs: tuple[str, ...] = ()
    """Metadata datasets the function reads through ``TaskInput.meta`` (recorded by earlier tasks)."""
    meta_output: str | None = None
    """The metadata dataset its ``TaskOutput.metadata`` makes (None: no task of the DAG reads it)."""
