"""The model portfolio and its registry: :func:`make_model` builds a model by name.

>>> import numpy as np
>>> make_model("seasonal_naive", season_length=2).fit(np.array([1.0, 2.0, 3.0])).forecast(3).tolist()
[2.0, 3.0, 2.0]
>>> sorted(MODELS)
['seasonal_naive', 'ses']
"""

from __future__ import annotations

from typing import Any

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models.naive import SeasonalNaive
from sparkhu.forecast.models.ses import SES

__all__ = ["MODELS", "SES", "Forecaster", "SeasonalNaive", "make_model"]

MODELS: dict[str, type[Forecaster]] = {cls.name: cls for cls in (SeasonalNaive, SES)}
"""Registry name → model class."""


def make_model(name: str, **params: Any) -> Forecaster:
    """A new, unfitted model of the registered ``name`` with hyperparameters ``params``.

    Raises :class:`ForecastError` for an unknown name or a hyperparameter the model does not take.
    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise ForecastError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ForecastError(f"model {name!r}: bad hyperparameters {params!r}: {exc}") from exc
