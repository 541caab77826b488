"""Seasonal naive: every step repeats the value one season earlier.

``yhat[n+k] = y[n+k-m*ceil(k/m)]`` for a season of ``m`` steps: the forecast repeats the last
observed season. While the history is shorter than one season the model falls back to the
plain naive forecast (the last value) and says why in ``fallback_reason_``. A missing
value (NaN) in the last season is taken from the season before; a phase never observed
takes the last observed value. The model keeps only the last two seasons, so ``update`` is
a bounded append.

>>> m = SeasonalNaive(season_length=3).fit(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
>>> m.forecast(5).tolist()
[4.0, 5.0, 6.0, 4.0, 5.0]
>>> short = SeasonalNaive(season_length=24).fit(np.array([1.0, 2.0]))
>>> short.forecast(2).tolist(), short.fallback_reason_ is not None
([2.0, 2.0], True)
"""

from __future__ import annotations

import numpy as np

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster


class SeasonalNaive(Forecaster):
    """Repeat the last season of ``season_length`` steps (naive when the history is shorter).

    Learned state: ``history_`` (at most two seasons) and ``fallback_reason_`` (``None`` when
    the seasonal forecast applies, else why the naive one is used).
    """

    name = "seasonal_naive"

    history_: np.ndarray
    fallback_reason_: str | None

    def __init__(self, season_length: int = 1) -> None:
        if (
            isinstance(season_length, bool)
            or not isinstance(season_length, int | np.integer)
            or season_length < 1
        ):
            raise ForecastError(
                f"seasonal_naive: season_length must be a positive integer, got {season_length!r}"
            )
        self.season_length = season_length
        super().__init__()

    def _reset(self) -> None:
        self.history_ = np.empty(0)
        self.fallback_reason_ = None

    def _fit(self, y: np.ndarray) -> None:
        self._keep(y)

    def _update(self, y_new: np.ndarray) -> None:
        self._keep(np.concatenate([self.history_, y_new]))

    def _keep(self, y: np.ndarray) -> None:
        m = int(self.season_length)
        self.history_ = y[-2 * m :].copy()
        if self.history_.size < m:
            self.fallback_reason_ = (
                f"history of {self.history_.size} points is shorter than season_length={m}: "
                "naive forecast (last value)"
            )
        else:
            self.fallback_reason_ = None

    def _last_value(self) -> float:
        finite = self.history_[np.isfinite(self.history_)]
        return float(finite[-1]) if finite.size else float("nan")

    def _season(self) -> np.ndarray:
        """The last season with missing phases filled from the season before (or the last value)."""
        m = int(self.season_length)
        h = self.history_
        rows = -(-h.size // m)
        padded = np.full(rows * m, np.nan)
        padded[rows * m - h.size :] = h
        grid = padded.reshape(rows, m)
        observed = np.isfinite(grid)
        row_of_last = np.where(observed, np.arange(rows)[:, None], -1).max(axis=0)
        season = grid[np.clip(row_of_last, 0, None), np.arange(m)]
        return np.where(row_of_last >= 0, season, self._last_value())

    def _forecast(self, horizon: int) -> np.ndarray:
        if self.fallback_reason_ is not None:
            return np.full(horizon, self._last_value())
        season = self._season()
        return season[np.arange(horizon) % season.size]

    def _forecast_sd(self, horizon: int) -> np.ndarray:
        steps = np.arange(1, horizon + 1)
        if self.fallback_reason_ is not None:
            residuals, multiplier = np.diff(self.history_), steps
        else:
            m = int(self.season_length)
            residuals = self.history_[m:] - self.history_[:-m]
            multiplier = (steps - 1) // m + 1
        residuals = residuals[np.isfinite(residuals)]
        if residuals.size == 0:
            return np.full(horizon, np.nan)
        return np.sqrt(np.mean(residuals**2) * multiplier)
