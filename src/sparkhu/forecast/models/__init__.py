"""The model portfolio and its registry: :func:`make_model` builds a model by name.

>>> import numpy as np
>>> make_model("seasonal_naive", season_length=2).fit(np.array([1.0, 2.0, 3.0])).forecast(3).tolist()
[2.0, 3.0, 2.0]
>>> {"seasonal_naive", "ses", "auto_ets", "auto_arima", "auto_theta", "mstl", "nlinear"} <= set(MODELS)
True
"""

from __future__ import annotations

import importlib
from typing import Any

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models.linear import DLinear, NLinear
from sparkhu.forecast.models.naive import SeasonalNaive
from sparkhu.forecast.models.ses import SES
from sparkhu.forecast.models.statistical import MSTL, AutoARIMA, AutoETS, AutoTheta, HoltWinters

__all__ = [
    "MODELS",
    "MSTL",
    "SES",
    "AutoARIMA",
    "AutoETS",
    "AutoTheta",
    "DLinear",
    "Forecaster",
    "HoltWinters",
    "NLinear",
    "SeasonalNaive",
    "make_model",
]

MODELS: dict[str, type[Forecaster]] = {
    cls.name: cls
    for cls in (SeasonalNaive, SES, AutoETS, HoltWinters, AutoARIMA, AutoTheta, MSTL, NLinear, DLinear)
}
"""Registry name → model class."""

LAZY_MODELS: dict[str, str] = {"lstm": "sparkhu.forecast.models.lstm:LSTMForecaster"}
"""Models needing an optional extra (torch: ``pip install sparkhu[deep]``), imported on first use."""


def make_model(name: str, **params: Any) -> Forecaster:
    """A new, unfitted model of the registered ``name`` with hyperparameters ``params``.

    Raises :class:`ForecastError` for an unknown name or a hyperparameter the model does not take.
    """
    cls = MODELS.get(name) or _lazy_model(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ForecastError(f"model {name!r}: bad hyperparameters {params!r}: {exc}") from exc


def _lazy_model(name: str) -> type[Forecaster]:
    if name not in LAZY_MODELS:
        known = ", ".join(sorted([*MODELS, *LAZY_MODELS]))
        raise ForecastError(f"unknown model {name!r}; known models: {known}")
    module, _, attr = LAZY_MODELS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ForecastError(f"model {name!r} needs the 'deep' extra (sparkhu[deep]): {exc}") from exc
