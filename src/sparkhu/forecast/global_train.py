"""Global training: one model learned from the windows of many series, then applied to each.

Per-series training (:mod:`sparkhu.forecast.train`) fits one champion per series; a global
model (NLinear/DLinear in closed form, or the LSTM with ``deep``) pools every series' windows
into one fit, which helps short series borrow what long ones show and costs one fit instead
of thousands. It is evaluated honestly before it is registered: fitted on every series minus
its last ``horizon`` slots, scored (MASE) on those held-out slots per series, then refitted on
everything, registered once as ``sparkhu.global.<model>`` and used to forecast each series
from its own recent values.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.metrics import mase
from sparkhu.forecast.models import make_model
from sparkhu.forecast.train import (
    SeriesResult,
    TrainConfig,
    TrainSummary,
    forecast_table,
    history_series,
    regular,
)
from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.storage.writes import writing_run

GLOBAL_MODELS = ("nlinear", "dlinear", "lstm")


@runtime_checkable
class GlobalModel(Protocol):
    """A model that learns one fit from the windows of many series (NLinear, DLinear, the LSTM)."""

    def fit_global(self, series: Sequence[np.ndarray]) -> Forecaster:
        """Fit on every series of ``series`` at once; returns the fitted model."""
        ...


def _global_model(name: str, params: Mapping[str, Any]) -> GlobalModel:
    model = make_model(name, **params)
    if not isinstance(model, GlobalModel):
        raise ForecastError(f"model {name!r} cannot learn from many series: it has no fit_global")
    return model


def _histories(table: pa.Table, series: Sequence[str], period_s: float) -> dict[str, tuple[np.ndarray, int]]:
    """Each series' values on its regular grid and the last slot's time (µs)."""
    ids = table.column("series_id").cast(pa.string())
    out: dict[str, tuple[np.ndarray, int]] = {}
    for sid in series:
        frame = table.filter(pc.equal(ids, sid)).select(["ts", "value"]).to_pandas()
        if len(frame):
            out[sid] = regular(frame, period_s)
    return out


def _bind(model: Forecaster, y: np.ndarray) -> Forecaster:
    """The global model given one series' recent values (the LSTM binds, linear models update a copy)."""
    if hasattr(model, "bind"):
        return model.bind(y)
    return copy.deepcopy(model).update(y)


def train_global(
    lake: Lake,
    catalog: Catalog,
    predictions: PredictionStore,
    registry: Any,
    series: Sequence[str] | None = None,
    *,
    dataset: str,
    model: str = "nlinear",
    zone: str | None = None,
    prefix: str = "",
    config: TrainConfig | None = None,
) -> TrainSummary:
    """Fit ``model`` over the series of ``dataset``, score it per series, register it once, forecast each."""
    if model not in GLOBAL_MODELS:
        raise ForecastError(f"global model {model!r}: expected one of {', '.join(GLOBAL_MODELS)}")
    cfg = config or TrainConfig()
    began = time.perf_counter()
    zone, wanted = history_series(lake, dataset, zone, series, prefix)
    histories = _histories(lake.read(zone, dataset, series=wanted), wanted, cfg.period_s)
    if cfg.max_points is not None:
        histories = {sid: (y[-cfg.max_points :], last) for sid, (y, last) in histories.items()}
    h = cfg.horizon
    usable = {sid: y for sid, (y, _) in histories.items() if np.isfinite(y).sum() > 2 * h + cfg.season_length}
    if not usable:
        raise ForecastError(
            f"global {model}: no series of {zone}/{dataset} is longer than 2 × horizon + season"
        )
    run_id = f"train-global-{uuid.uuid4().hex[:12]}"
    catalog.start_run(
        RunRecord(
            run_id,
            "train",
            f"global/{model}",
            "running",
            datetime.now(UTC),
            params={"dataset": f"{zone}/{dataset}", "series": len(usable), "model": model},
        )
    )
    params = (
        {"output": h, "season_length": cfg.season_length}
        if model in ("nlinear", "dlinear")
        else {"horizon": h}
    )
    # Honest score first: fit without each series' last horizon, forecast it, compare.
    held_out = _global_model(model, params).fit_global([y[:-h] for y in usable.values()])
    scores = {
        sid: mase(
            y[-h:], _bind(held_out, y[:-h]).forecast(h), insample=y[:-h], season_length=cfg.season_length
        )
        for sid, y in usable.items()
    }
    fitted = _global_model(model, params).fit_global(list(usable.values()))
    finite = [s for s in scores.values() if np.isfinite(s)]
    with writing_run(run_id):  # the model version is this run's
        done = registry.log_training(
            model,
            _bind(fitted, next(iter(usable.values()))),
            params={"global": True, "series": len(usable), "horizon": h, "period_s": cfg.period_s},
            metrics={
                "mase_mean": float(np.mean(finite)) if finite else None,
                "mase_median": float(np.median(finite)) if finite else None,
            },
            meta={"period_s": cfg.period_s, "series": sorted(usable)},
            alias=cfg.alias,
        )
    catalog.link_model_series(done.name, str(done.version), sorted(usable))  # in each one's lineage
    summary = TrainSummary(zone=zone, dataset=dataset, run_id=run_id)
    tables = []
    label = f"global-{model}@v{done.version}"
    for sid in wanted:
        if sid not in usable:
            summary.results.append(
                SeriesResult(sid, "failed", reason="too short for the global model's windows")
            )
            continue
        y, last_us = histories[sid]
        table = forecast_table(sid, _bind(fitted, y), last_us, cfg, label)
        tables.append(table)
        score = float(scores[sid]) if np.isfinite(scores[sid]) else None
        summary.results.append(
            SeriesResult(
                sid,
                "trained",
                champion=f"global-{model}",
                score=score,
                version=done.version,
                run_id=done.run_id,
                forecasts=table.num_rows,
            )
        )
    stored = predictions.write(pa.concat_tables(tables)) if tables else 0
    summary.seconds = time.perf_counter() - began
    catalog.finish_run(run_id, "success", rows_in=sum(y.size for y in usable.values()), rows_out=stored)
    return summary
