"""Feature views: named, versioned definitions of a model's inputs, shared by training and serving.

A :class:`FeatureView` names the series (a list, or every series of a prefix), the pipeline zone
they are read from, the normalisation (none, or the pipeline's ``normalized`` dataset, whose
per-series parameters the catalog keeps), and the window (slots of ``period_s``). Saving a changed
definition makes a new version (:meth:`~sparkhu.storage.catalog.Catalog.put_feature_view`); a model
version records the view and version it was trained on (``sparkhu train --feature-view NAME``), and
:func:`features` reads exactly those inputs for serving — the same code path as training's read.

>>> view = FeatureView(name="house", dataset="ampds2_electricity", prefix="ampds2/electricity/", window=1440)
>>> view.location, view.select(["ampds2/electricity/WHE.P", "other/x/y"])
(('clean', 'ampds2_electricity'), ['ampds2/electricity/WHE.P'])
>>> FeatureView(name="house", dataset="ampds2_electricity", normalisation="pipeline").location
('features', 'ampds2_electricity.normalized')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sparkhu.config import validation_message
from sparkhu.errors import InputError, NotFoundError
from sparkhu.series import is_series_id
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake


class FeatureView(BaseModel):
    """The definition of one feature view (what ``sparkhu feature-views apply`` takes)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
    dataset: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    """The source dataset (``<source>_<measurement>``) whose pipeline outputs the view reads."""
    series: list[str] = []
    """The series of the view; empty: every series of ``dataset`` whose id starts with ``prefix``."""
    prefix: str = ""
    zone: Literal["raw", "clean"] = "clean"
    normalisation: Literal["none", "pipeline"] = "none"
    """``pipeline``: the pipeline's ``features/<dataset>.normalized`` (its parameters are in each series'
    catalog metadata), so that a forecast can be turned back into the series' unit."""
    window: int = Field(default=1440, ge=2, le=10_000_000)
    """How many of the newest slots (of ``period_s``) a model sees."""
    period_s: float = Field(default=60.0, gt=0.0)
    description: str | None = None
    version: int | None = None
    """Set when read from the catalog."""

    @model_validator(mode="after")
    def _check_series(self) -> FeatureView:
        bad = [sid for sid in self.series if not is_series_id(sid)]
        if bad:
            raise ValueError(f"series {bad[0]!r} is not a series id (source/measurement/field)")
        return self

    @property
    def location(self) -> tuple[str, str]:
        """The lake (zone, dataset) the view reads."""
        if self.normalisation == "pipeline":
            return "features", f"{self.dataset}.normalized"
        return self.zone, self.dataset

    def select(self, known: Sequence[str]) -> list[str]:
        """The view's series among ``known`` ones (its list, or the known ones with its prefix)."""
        if self.series:
            return sorted(set(self.series) & set(known))
        return sorted(s for s in known if s.startswith(self.prefix))

    def body(self) -> dict[str, Any]:
        """What is stored and versioned (everything but the name, version and description)."""
        return self.model_dump(mode="json", exclude={"name", "version", "description"})


def parse_view(data: Any, where: str) -> FeatureView:
    """A :class:`FeatureView` from a mapping (a TOML or JSON file's table); :class:`InputError` naming
    ``where`` and the field otherwise."""
    if not isinstance(data, dict):
        raise InputError(f"a feature view is a table of fields, got {type(data).__name__}", source=where)
    try:
        return FeatureView.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(exc), source=where) from exc


def apply_view(catalog: Catalog, view: FeatureView) -> int:
    """Save ``view`` (a new version when its definition changed); returns its version."""
    return catalog.put_feature_view(view.name, view.body(), view.description)


def get_view(catalog: Catalog, name: str, version: int | None = None) -> FeatureView:
    """The stored view ``name`` (its newest version unless ``version``); NotFoundError if none."""
    row = catalog.feature_view(name, version)
    return FeatureView.model_validate(
        {**row["body"], "name": row["name"], "version": row["version"], "description": row["description"]}
    )


def features(
    lake: Lake, view: FeatureView, *, series: Sequence[str] | None = None, end: datetime | None = None
) -> pa.Table:
    """The inputs ``view`` gives a model: per series of the view (or of ``series``, which must be in
    it), its newest ``window`` slots before ``end`` from the view's lake dataset (POINT_SCHEMA).

    Training reads its history from the same place (zone, dataset, series, window), so a model is
    served what it was trained on.
    """
    zone, dataset = view.location
    if (zone, dataset) not in lake.datasets(zone):
        raise NotFoundError(
            f"feature view {view.name!r} reads {zone}/{dataset}, which is not in the lake yet"
        )
    chosen = view.select(lake.series(zone, dataset))
    if series is not None:
        outside = sorted(set(series) - set(chosen))
        if outside:
            raise InputError(f"series {outside[0]!r} is not in feature view {view.name!r}", field="series")
        chosen = sorted(series)
    if not chosen:
        raise NotFoundError(f"feature view {view.name!r} selects no series of {zone}/{dataset}")
    start = end - timedelta(seconds=view.window * view.period_s) if end is not None else None
    table = lake.read(zone, dataset, series=chosen, start=start, end=end)
    if end is None and table.num_rows:  # the newest window of each series
        schema = table.schema
        ids = table.column("series_id").cast(pa.string())
        plain = table.set_column(table.schema.get_field_index("series_id"), "series_id", ids)
        newest = plain.group_by("series_id").aggregate([("ts", "max")])
        joined = plain.join(newest, "series_id")
        window = pa.scalar(timedelta(seconds=view.window * view.period_s), pa.duration("us"))
        kept = joined.filter(pc.greater(joined.column("ts"), pc.subtract(joined.column("ts_max"), window)))
        kept = kept.drop_columns(["ts_max"]).sort_by([("series_id", "ascending"), ("ts", "ascending")])
        table = kept.select(schema.names).cast(schema)
    return table


def serving_problems(
    view: FeatureView, series_id: str, *, zone: str, dataset: str, period_s: float
) -> list[str]:
    """Why a model trained on ``view`` must not be served ``series_id`` from online points of ``zone``
    / ``dataset`` stepped every ``period_s`` (empty: it may). The live points are the series' raw
    values; a view of the pipeline's ``clean`` zone is served them (same unit, not cleaned yet).

    >>> view = FeatureView(
    ...     name="house", dataset="home_power", series=["home/power/P"], normalisation="pipeline"
    ... )
    >>> for problem in serving_problems(view, "home/power/Q", zone="raw", dataset="home_power", period_s=60):
    ...     print(problem)
    does not hold home/power/Q
    reads the pipeline's normalised values (features/home_power.normalized), online ones are raw
    """
    problems = []
    if not view.select([series_id]):
        problems.append(f"does not hold {series_id}")
    if view.dataset != dataset:
        problems.append(f"reads dataset {view.dataset}, the online predictor {zone}/{dataset}")
    if view.normalisation == "pipeline":
        zone_name, name = view.location
        problems.append(f"reads the pipeline's normalised values ({zone_name}/{name}), online ones are raw")
    if abs(view.period_s - period_s) > 1e-9 * max(view.period_s, period_s):
        problems.append(f"steps {view.period_s:g} s, the online predictor {period_s:g} s")
    return problems
