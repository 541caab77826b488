"""The pipeline's datasets: names of the DAG bound to lake zones, and frames in and out.

A task names its data by string (``deduped``, ``stats``...); :class:`Datasets` resolves a
name, for one source dataset ``D``, to a zone and a lake dataset (the table in
``docs/pipeline.md``) and reads or replaces it: point datasets through
:meth:`~sparkhu.storage.lake.Lake.read`/:meth:`~sparkhu.storage.lake.Lake.replace`
(``POINT_SCHEMA``), the others through the generic tables
(:meth:`~sparkhu.storage.lake.Lake.read_table`/:meth:`~sparkhu.storage.lake.Lake.replace_table`).
A name not in the table is an ``analysis`` table ``D.<name>``.

:func:`assemble` turns per-series frames into one table (the reverse of
:func:`sparkhu.series.series_frames`).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as root:
...     ds = Datasets(Lake(root), "meters")
...     [f"{s.zone}/{s.name}" for s in map(ds.spec, ["raw", "deduped", "stats", "scores"])]
['raw/meters', 'clean/meters.deduped', 'analysis/meters.stats', 'analysis/meters.scores']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import InputError, PipelineError
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE, TS_TYPE
from sparkhu.storage.lake import Lake
from sparkhu.timeaxis import from_us_array, to_us_array

LAYOUT: dict[str, tuple[str, str, bool]] = {
    # name: (zone, suffix of the lake dataset after "D." ("" = D itself), points?)
    "raw": ("raw", "", True),
    "validated": ("validated", "", True),
    "deduped": ("clean", "deduped", True),
    "inliers": ("clean", "inliers", True),
    "imputed": ("clean", "imputed", True),
    "clean": ("clean", "", True),
    "normalized": ("features", "normalized", True),
    "windows": ("features", "windows", False),
    "stats": ("analysis", "stats", False),
    "regularity": ("analysis", "regularity", False),
    "outliers": ("analysis", "outliers", False),
    "missing": ("analysis", "missing", False),
    "decomposition": ("analysis", "decomposition", False),
    "anomalies": ("analysis", "anomalies", False),
    "correlation": ("analysis", "correlation", False),
}


@dataclass(frozen=True)
class DatasetSpec:
    """Where a DAG dataset lives: lake zone, lake dataset name, and whether it holds points."""

    zone: str
    name: str
    points: bool


class Datasets:
    """The DAG datasets of source dataset ``dataset`` in ``lake``; ``layout`` adds or overrides names."""

    def __init__(
        self, lake: Lake, dataset: str, layout: Mapping[str, tuple[str, str, bool]] | None = None
    ) -> None:
        self.lake = lake
        self.dataset = dataset
        self.layout = {**LAYOUT, **(layout or {})}

    def spec(self, name: str) -> DatasetSpec:
        """The zone and lake dataset of DAG dataset ``name``."""
        zone, suffix, points = self.layout.get(name, ("analysis", name, False))
        return DatasetSpec(zone, f"{self.dataset}.{suffix}" if suffix else self.dataset, points)

    def read(
        self, name: str, start: datetime, end: datetime, series: Sequence[str] | None = None
    ) -> pa.Table:
        """Rows of ``name`` with start ≤ ts < end, sorted by (series_id, ts)."""
        spec = self.spec(name)
        if spec.points:
            return self.lake.read(spec.zone, spec.name, start=start, end=end, series=series)
        return self.lake.read_table(spec.zone, spec.name, start=start, end=end, series=series)

    def replace(self, name: str, table: pa.Table, days: Sequence[date]) -> list[str]:
        """Replace ``days`` of ``name`` with ``table`` (an empty table clears them)."""
        spec = self.spec(name)
        if spec.points:
            return self.lake.replace(spec.zone, spec.name, table, days)
        return self.lake.replace_table(spec.zone, spec.name, table, days)


def assemble(parts: Sequence[tuple[str, pd.DataFrame]], *, points: bool) -> pa.Table:
    """One table from per-series frames, ``series_id`` first (dictionary-encoded).

    Points (``ts``, ``value``) take a numpy fast path; other frames are concatenated by pandas.
    Raises :class:`PipelineError` when frames lack ``ts`` or do not combine.
    """
    parts = [(sid, frame) for sid, frame in parts if len(frame)]
    for sid, frame in parts:
        if "ts" not in frame.columns:
            raise PipelineError(
                f"{sid}: output frame lacks a ts column (has {', '.join(map(str, frame.columns))})"
            )
    if not parts:
        if points:
            return POINT_SCHEMA.empty_table()
        return pa.schema([("series_id", SERIES_ID_TYPE), ("ts", TS_TYPE)]).empty_table()
    names = pa.array([sid for sid, _ in parts], pa.string())
    lengths = np.array([len(frame) for _, frame in parts], dtype=np.int64)
    codes = pa.array(np.repeat(np.arange(len(parts), dtype=np.int32), lengths))
    series_id = pa.DictionaryArray.from_arrays(codes, names)
    try:
        if points:
            ts = np.concatenate([to_us_array(frame["ts"]) for _, frame in parts])
            value = np.concatenate(
                [frame["value"].to_numpy(dtype="float64", na_value=np.nan) for _, frame in parts]
            )
            return pa.Table.from_arrays([series_id, from_us_array(ts), pa.array(value)], schema=POINT_SCHEMA)
        combined = pd.concat([frame for _, frame in parts], ignore_index=True)
        combined["ts"] = pd.to_datetime(combined["ts"], utc=True).dt.as_unit("us")
        body = pa.Table.from_pandas(
            combined.drop(columns=["series_id"], errors="ignore"), preserve_index=False
        )
    except (InputError, KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        raise PipelineError(
            f"output frames cannot be combined into one table ({exc}); return the same columns and "
            "types for every series"
        ) from exc
    return body.add_column(0, "series_id", series_id)


def within(table: pa.Table, start: datetime, end: datetime) -> pa.Table:
    """Rows of ``table`` with start ≤ ts < end."""
    if table.num_rows == 0:
        return table
    ts = table.column("ts")
    keep = pc.and_(
        pc.greater_equal(ts, pa.scalar(start, type=ts.type)), pc.less(ts, pa.scalar(end, type=ts.type))
    )
    return table.filter(keep)
