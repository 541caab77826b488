"""The forecaster contract: one convention for batch and online models.

Every model follows the same rules (after River):

* constructor hyperparameters are stored verbatim, as attributes of the same name, and are
  what :attr:`Forecaster.params` returns and :meth:`Forecaster.clone` copies;
* learned state lives in attributes ending in ``_`` and is (re)built in one place,
  :meth:`Forecaster.reset`, which :meth:`Forecaster.fit` calls first;
* a model that draws random numbers takes an explicit ``seed`` hyperparameter and uses
  :meth:`Forecaster.rng`; nothing touches a global random state;
* the verbs are the same everywhere: ``fit(y)`` learns from a history, ``update(y_new)``
  absorbs new observations without refitting, ``forecast(horizon)`` returns the point
  forecasts and ``forecast_interval(horizon)`` their prediction interval.

Histories are 1-D arrays of floats at a regular step; NaN marks a missing observation and
each model says how it treats one. Fitting on nothing (empty or all NaN) or forecasting
before fitting raises :class:`~sparkhu.errors.ForecastError`.

>>> from sparkhu.forecast.models import make_model
>>> model = make_model("ses", alpha=0.5).fit(np.array([1.0, 3.0]))
>>> model.forecast(2)
array([2., 2.])
>>> model.update(np.array([4.0])).forecast(1)
array([3.])
>>> model.clone().params, model.clone().is_fitted
({'alpha': 0.5}, False)
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from statistics import NormalDist
from typing import Any, ClassVar, Self

import numpy as np

from sparkhu.errors import ForecastError


class Forecaster(ABC):
    """Base class of every forecasting model (see the module docstring for the convention).

    Subclasses store their hyperparameters, then call ``super().__init__()``, and implement
    :meth:`_reset`, :meth:`_fit`, :meth:`_update` and :meth:`_forecast` (and optionally
    :meth:`_forecast_sd` for intervals).
    """

    name: ClassVar[str] = ""
    """Registry name of the model (``"ses"``), also written into stored forecasts."""

    n_obs_: int

    def __init__(self) -> None:
        self.reset()

    # ---- hyperparameters -------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The constructor's hyperparameters, exactly as given."""
        signature = inspect.signature(type(self).__init__)
        names = [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def clone(self, **overrides: Any) -> Self:
        """A fresh, unfitted model with the same hyperparameters (some optionally overridden)."""
        return type(self)(**(self.params | overrides))

    def rng(self) -> np.random.Generator:
        """A generator seeded by the model's ``seed`` hyperparameter (``None`` when it has none)."""
        return np.random.default_rng(getattr(self, "seed", None))

    # ---- state -----------------------------------------------------------------------
    def reset(self) -> Self:
        """Forget everything learned; the model is as freshly constructed."""
        self.n_obs_ = 0
        self._reset()
        return self

    @property
    def is_fitted(self) -> bool:
        """True once the model has seen at least one observation."""
        return self.n_obs_ > 0

    # ---- verbs -----------------------------------------------------------------------
    def fit(self, y: np.ndarray, ts: np.ndarray | None = None) -> Self:
        """Learn from the history ``y`` (oldest first), replacing any previous state.

        ``ts`` (timestamps of ``y``, optional) must have the same length; models here only
        need the order. Raises :class:`ForecastError` for empty or all-NaN input.
        """
        arr = _as_history(y, self.name)
        if ts is not None and len(ts) != len(arr):
            raise ForecastError(
                f"{self.name}: ts has {len(ts)} timestamps for {len(arr)} values; pass one per value"
            )
        if not np.isfinite(arr).any():
            raise ForecastError(
                f"{self.name}: cannot fit on {len(arr)} values that are all NaN or infinite; "
                "pass at least one observed value"
            )
        self.reset()
        self._fit(arr)
        self.n_obs_ = len(arr)
        return self

    def update(self, y_new: np.ndarray) -> Self:
        """Absorb new observations (oldest first) without refitting from scratch.

        An unfitted model is fitted on ``y_new`` instead; an empty ``y_new`` changes nothing.
        """
        arr = np.asarray(y_new, dtype="float64").reshape(-1)
        if arr.size == 0:
            return self
        if not self.is_fitted:
            return self.fit(arr)
        self._update(arr)
        self.n_obs_ += len(arr)
        return self

    def forecast(self, horizon: int) -> np.ndarray:
        """Point forecasts for the next ``horizon`` steps after the last observation."""
        self._check_ready(horizon)
        return self._forecast(int(horizon))

    def forecast_interval(self, horizon: int, coverage: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the central ``coverage`` prediction interval (Gaussian errors).

        Bounds are NaN where the model cannot tell (no residuals yet, or no error model).
        """
        self._check_ready(horizon)
        if not 0.0 < coverage < 1.0:
            raise ForecastError(f"{self.name}: coverage must be in (0, 1), got {coverage}")
        mean = self._forecast(int(horizon))
        z = NormalDist().inv_cdf(0.5 + coverage / 2.0)
        sd = self._forecast_sd(int(horizon))
        return mean - z * sd, mean + z * sd

    # ---- to implement ----------------------------------------------------------------
    @abstractmethod
    def _reset(self) -> None:
        """Set every learned attribute to its initial value."""

    @abstractmethod
    def _fit(self, y: np.ndarray) -> None:
        """Learn from a validated history (1-D float64, at least one finite value)."""

    @abstractmethod
    def _update(self, y_new: np.ndarray) -> None:
        """Absorb a non-empty 1-D float64 array of new observations (may contain NaN)."""

    @abstractmethod
    def _forecast(self, horizon: int) -> np.ndarray:
        """``horizon`` point forecasts (the model is fitted, ``horizon`` ≥ 1)."""

    def _forecast_sd(self, horizon: int) -> np.ndarray:
        """Standard deviation of the forecast error per step; NaN when unknown."""
        return np.full(horizon, np.nan)

    def _check_ready(self, horizon: int) -> None:
        if not self.is_fitted:
            raise ForecastError(f"{self.name}: forecast before fit; call fit(y) with a history first")
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ForecastError(f"{self.name}: horizon must be a positive integer, got {horizon!r}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _as_history(y: Any, model: str) -> np.ndarray:
    """``y`` as a 1-D float64 array; ForecastError when it is empty or not numeric."""
    try:
        arr = np.asarray(y, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise ForecastError(f"{model}: history is not numeric: {exc}") from exc
    if arr.ndim != 1:
        raise ForecastError(f"{model}: history must be 1-D (one series), got shape {arr.shape}")
    if arr.size == 0:
        raise ForecastError(f"{model}: cannot fit on an empty history; pass at least one value")
    return arr
