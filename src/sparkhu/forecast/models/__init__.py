"""The model portfolio and its registry: :func:`make_model` builds a model by name.

:data:`MODELS` maps a model's ``name`` to its :class:`Forecaster` class; a third party adds a
model with an entry point of the ``sparkhu.models`` group naming its class (see docs/extending.md).

>>> import numpy as np
>>> make_model("seasonal_naive", season_length=2).fit(np.array([1.0, 2.0, 3.0])).forecast(3).tolist()
[2.0, 3.0, 2.0]
>>> {"seasonal_naive", "ses", "auto_ets", "auto_arima", "auto_theta", "mstl", "nlinear"} <= set(MODELS)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models.linear import DLinear, NLinear
from sparkhu.forecast.models.naive import SeasonalNaive
from sparkhu.forecast.models.ses import SES
from sparkhu.forecast.models.statistical import MSTL, AutoARIMA, AutoETS, AutoTheta, HoltWinters
from sparkhu.plugins import Registry

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
    "model_class",
]

MODELS: Registry[type[Forecaster]] = Registry("model", group="sparkhu.models")
"""Registry name → model class."""
for _cls in (SeasonalNaive, SES, AutoETS, HoltWinters, AutoARIMA, AutoTheta, MSTL, NLinear, DLinear):
    MODELS.register(_cls.name, _cls)


def _lstm() -> type[Forecaster]:
    from sparkhu.forecast.models.lstm import LSTMForecaster

    return LSTMForecaster


OPTIONAL_MODELS: dict[str, tuple[str, Callable[[], type[Forecaster]]]] = {"lstm": ("deep", _lstm)}
"""Models needing an optional extra (torch: ``pip install sparkhu[deep]``): name → (extra, loader),
imported on first use so that the other models work without the extra."""


def model_class(name: str) -> type[Forecaster]:
    """The class registered as ``name``; :class:`ForecastError` for an unknown name or a missing extra."""
    if name in OPTIONAL_MODELS:
        extra, load = OPTIONAL_MODELS[name]
        try:
            return load()
        except ImportError as exc:
            raise ForecastError(
                f"model {name!r} needs the {extra!r} extra (sparkhu[{extra}]): {exc}"
            ) from exc
    if name not in MODELS:
        known = ", ".join(sorted([*MODELS.keys(), *OPTIONAL_MODELS]))
        raise ForecastError(f"unknown model {name!r}; known models: {known}")
    return MODELS.get(name)


def make_model(name: str, **params: Any) -> Forecaster:
    """A new, unfitted model of the registered ``name`` with hyperparameters ``params``.

    Raises :class:`ForecastError` for an unknown name or a hyperparameter the model does not take.
    """
    cls = model_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ForecastError(f"model {name!r}: bad hyperparameters {params!r}: {exc}") from exc
