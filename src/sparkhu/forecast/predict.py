"""One-off forecasts from the registry, and bringing a trained model up to date with newer points.

:func:`predict_series` is ``sparkhu predict``: load a series' champion, feed it the lake's
points after its training, forecast from the last point, store and return the forecasts.
:func:`update_since` is the catch-up step it shares with the online layer, which does the
same with its windows when a new champion is swapped in.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa

from sparkhu.errors import NotFoundError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.forecast.train import TrainConfig, forecast_table, regular
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore


def update_since(
    model: Forecaster, ts_us: np.ndarray, values: np.ndarray, since_us: int | None
) -> Forecaster:
    """``update`` a fitted ``model`` with the points newer than ``since_us``; returns the model.

    ``ts_us``/``values``: points oldest first (µs since the epoch). ``since_us``: the newest
    point the model was trained on (``None``: unknown, nothing is fed).

    >>> from sparkhu.forecast.models import make_model
    >>> model = make_model("seasonal_naive", season_length=2).fit(np.array([1.0, 2.0]))
    >>> update_since(model, np.array([10, 20, 30, 40]), np.array([1.0, 2.0, 3.0, 4.0]), 20).forecast(2)
    array([3., 4.])
    """
    if since_us is None:
        return model
    newer = np.asarray(ts_us) > since_us
    if newer.any():
        model.update(np.asarray(values)[newer])
    return model


def predict_series(
    lake: Lake,
    predictions: PredictionStore,
    registry: ModelRegistry,
    series_id: str,
    *,
    dataset: str,
    zone: str | None = None,
    horizon: int = 20,
    alias: str = "champion",
    now: datetime | None = None,
) -> pa.Table:
    """Forecast ``series_id`` with its champion from the last point in the lake; store and return them.

    The champion is brought up to date with the points after its training (``update``).
    ``zone`` defaults to ``clean`` when the dataset has been cleaned, else ``raw``; ``now``
    ignores the points after it. Raises :class:`NotFoundError` when the series has no
    champion or no points.
    """
    served = registry.served(series_id, alias)
    zone = zone or ("clean" if ("clean", dataset) in lake.datasets("clean") else "raw")
    history = lake.read(zone, dataset, series=[series_id], end=now)
    if history.num_rows == 0:
        raise NotFoundError(f"series {series_id!r} has no points in {zone}/{dataset}")
    period = served.period_s or 60.0
    y, last_us = regular(history.select(["ts", "value"]).to_pandas(), period)
    step_us = round(period * 1_000_000)
    ts_us = last_us - np.arange(y.size - 1, -1, -1, dtype="int64") * step_us
    model = update_since(served.forecaster, ts_us, y, served.last_ts_us)
    config = TrainConfig(horizon=horizon, period_s=period, coverage=getattr(model, "coverage", 0.95))
    table = forecast_table(series_id, model, last_us, config, served.label)
    predictions.write(table)
    return table
