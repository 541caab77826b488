"""Rolling-origin back-testing as a plain function, and its streaming twin.

:func:`backtest` cuts a history into ``windows`` forecast origins ``step`` points apart,
the last one ``horizon`` points before the end; at each origin the model learns from
everything before it and forecasts ``horizon`` steps, which are scored against the actual
values. With ``refit=True`` (the default) the model is re-fitted at every origin; with
``refit=False`` it is fitted once at the first origin and then ``update``-d with the
actual values up to each later origin (cheaper; parameters are not re-estimated); with
``refit=k`` it is re-fitted at every k-th window and updated in between.

:class:`RollingScore` keeps the same metrics up to date as actual values arrive next to
the forecasts that were made for them (for the dashboard).

>>> from sparkhu.forecast.models import SeasonalNaive
>>> y = np.tile([1.0, 5.0, 3.0], 10)
>>> result = backtest(y, SeasonalNaive(season_length=3), horizon=3, step=3, windows=2, season_length=3)
>>> result.origins.tolist(), result.table()["mae"]
([24, 27], 0.0)
>>> live = RollingScore(season_length=1).update([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
>>> live.scores()["mae"], live.count
(1.0, 3)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster, _as_history
from sparkhu.forecast.metrics import METRICS, check_metrics, mase_scale, score


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ForecastError(f"backtest: {name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class BacktestResult:
    """Everything a back-test produced, per window (rows) and horizon step (columns)."""

    model: str
    """The model's name (or the label given to :func:`backtest`)."""
    horizon: int
    step: int
    season_length: int
    origins: np.ndarray
    """Index in the history of each window's first forecast point (the training size)."""
    forecasts: np.ndarray
    """Shape (windows, horizon)."""
    actuals: np.ndarray
    """Shape (windows, horizon); NaN where the history had a missing value."""
    scores: dict[str, np.ndarray]
    """Metric name → score per window."""
    fallbacks: list[str | None] = field(default_factory=list)
    """The model's ``fallback_reason_`` at each window (None when it has none)."""
    seconds: float = 0.0
    """Wall time of the whole back-test (fits and forecasts)."""

    @property
    def windows(self) -> int:
        """Number of windows evaluated."""
        return int(self.origins.size)

    @property
    def residuals(self) -> np.ndarray:
        """``actual - forecast``, shape (windows, horizon): column k holds the step-(k+1) errors."""
        return self.actuals - self.forecasts

    def table(self) -> dict[str, float]:
        """Mean score over the windows, per metric (NaN windows ignored)."""
        out = {}
        for name, values in self.scores.items():
            finite = values[np.isfinite(values)]
            out[name] = float(finite.mean()) if finite.size else float("nan")
        return out


def window_origins(n: int, *, horizon: int, step: int, windows: int, min_train: int) -> np.ndarray:
    """Origins of the back-test windows (oldest first) that leave ``min_train`` points to learn from."""
    last = n - horizon
    origins = last - step * np.arange(windows - 1, -1, -1)
    return origins[origins >= min_train]


def _refit_every(refit: bool | int) -> int:
    """Re-fit period in windows: 1 = every window, 0 = only the first."""
    if isinstance(refit, bool):
        return 1 if refit else 0
    if not isinstance(refit, int | np.integer) or refit < 1:
        raise ForecastError(f"backtest: refit must be True, False or a positive integer, got {refit!r}")
    return int(refit)


def plan_windows(
    n: int,
    *,
    horizon: int,
    step: int | None = None,
    windows: int = 3,
    season_length: int = 1,
    min_train: int | None = None,
) -> tuple[int, int, int, np.ndarray]:
    """Check back-test arguments for ``n`` points: ``(horizon, step, season_length, origins)``.

    Raises :class:`ForecastError` for a non-positive argument or when no window fits.
    """
    horizon = _positive_int("horizon", horizon)
    step = horizon if step is None else _positive_int("step", step)
    windows = _positive_int("windows", windows)
    season_length = _positive_int("season_length", season_length)
    min_train = max(2 * season_length, 3) if min_train is None else _positive_int("min_train", min_train)
    origins = window_origins(n, horizon=horizon, step=step, windows=windows, min_train=min_train)
    if origins.size == 0:
        raise ForecastError(
            f"backtest: a history of {n} points has no window of horizon {horizon} after "
            f"{min_train} training points; pass a longer history or a smaller horizon/min_train"
        )
    return horizon, step, season_length, origins


def backtest(
    y: np.ndarray,
    model: Forecaster,
    *,
    horizon: int,
    step: int | None = None,
    windows: int = 3,
    season_length: int = 1,
    metrics: Sequence[str] = tuple(METRICS),
    refit: bool | int = True,
    min_train: int | None = None,
    label: str | None = None,
) -> BacktestResult:
    """Rolling-origin evaluation of ``model`` on the history ``y``.

    ``step`` (default ``horizon``) separates the origins; ``windows`` is how many there are
    at most (windows that would leave fewer than ``min_train`` training points, by default
    ``max(2·season_length, 3)``, are dropped). ``season_length`` is MASE's season. The
    model passed in is not modified (clones are fitted). Raises :class:`ForecastError` for
    bad arguments or a history too short for a single window; a model's own exception
    propagates (:func:`~sparkhu.forecast.selection.select_champion` records it).
    """
    arr = _as_history(y, "backtest")
    horizon, step, season_length, origins = plan_windows(
        arr.size,
        horizon=horizon,
        step=step,
        windows=windows,
        season_length=season_length,
        min_train=min_train,
    )
    names = check_metrics(list(metrics))
    every = _refit_every(refit)
    start = time.perf_counter()
    forecasts = np.empty((origins.size, horizon))
    fallbacks: list[str | None] = []
    fitted: Forecaster | None = None
    previous = 0
    for i, origin in enumerate(origins.tolist()):
        if fitted is None or (every and i % every == 0):
            fitted = model.clone().fit(arr[:origin])
        else:
            fitted.update(arr[previous:origin])
        previous = origin
        forecasts[i] = fitted.forecast(horizon)
        fallbacks.append(getattr(fitted, "fallback_reason_", None))
    seconds = time.perf_counter() - start
    actuals = arr[origins[:, None] + np.arange(horizon)[None, :]]
    per_window = [
        score(actuals[i], forecasts[i], insample=arr[:o], season_length=season_length, metrics=names)
        for i, o in enumerate(origins.tolist())
    ]
    scores = {name: np.array([w[name] for w in per_window]) for name in names}
    return BacktestResult(
        model=label or model.name,
        horizon=horizon,
        step=step,
        season_length=season_length,
        origins=origins,
        forecasts=forecasts,
        actuals=actuals,
        scores=scores,
        fallbacks=fallbacks,
        seconds=seconds,
    )


class RollingScore:
    """Error metrics kept current as (actual, forecast) pairs arrive — the streaming twin of :func:`backtest`.

    ``season_length``: MASE's season; its scale is the mean absolute seasonal difference of
    the actual values seen so far, unless a fixed ``scale`` is given (e.g.
    :func:`~sparkhu.forecast.metrics.mase_scale` of the training history). ``window``: score
    only the last ``window`` pairs (``None``: all of them). Pairs with a NaN are skipped.

    >>> rs = RollingScore(window=2)
    >>> rs.update([10.0, 10.0], [9.0, 11.0]).update(10.0, 14.0).scores()["mae"]
    2.5
    """

    def __init__(
        self, season_length: int = 1, *, window: int | None = None, scale: float | None = None
    ) -> None:
        self.season_length = _positive_int("season_length", season_length)
        self.window = None if window is None else _positive_int("window", window)
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise ForecastError(f"RollingScore: scale must be a positive number, got {scale!r}")
        self.scale = scale
        self._recent = np.empty(0)  # the last season_length actuals, for the seasonal differences
        self._err = np.empty(0)  # forecast errors kept (only when window is set)
        self._act = np.empty(0)
        self._naive = np.empty(0)
        self._sums = np.zeros(6)  # |e|, e², |e/y| (y≠0), count y≠0, sape, naive |diff|
        self._naive_count = 0
        self.count = 0

    def update(
        self, actual: float | Sequence[float] | np.ndarray, forecast: float | Sequence[float] | np.ndarray
    ) -> Self:
        """Absorb actual values (oldest first) with the forecasts made for them."""
        a = np.atleast_1d(np.asarray(actual, dtype="float64"))
        f = np.atleast_1d(np.asarray(forecast, dtype="float64"))
        if a.shape != f.shape or a.ndim != 1:
            raise ForecastError(
                f"RollingScore.update: actuals of shape {a.shape} but forecasts of shape {f.shape}; "
                "pass one forecast per actual"
            )
        m = self.season_length
        joined = np.concatenate([self._recent, a])
        naive = np.abs(joined[m:] - joined[:-m]) if joined.size > m else np.empty(0)
        naive = naive[np.isfinite(naive)]
        self._recent = joined[-m:]
        keep = np.isfinite(a) & np.isfinite(f)
        a, f = a[keep], f[keep]
        if self.window is None:
            self._sums += _contributions(a, f, naive)
            self._naive_count += naive.size
        else:
            self._act = np.concatenate([self._act, a])[-self.window :]
            self._err = np.concatenate([self._err, a - f])[-self.window :]
            self._naive = np.concatenate([self._naive, naive])[-self.window :]
        self.count = int(self._act.size) if self.window is not None else self.count + int(a.size)
        return self

    def scores(self) -> dict[str, float]:
        """The current MAE, RMSE, MAPE, sMAPE and MASE (NaN before any pair)."""
        if self.window is None:
            sums, naive_n = self._sums, self._naive_count
        else:
            sums = _contributions(self._act, self._act - self._err, self._naive)
            naive_n = self._naive.size
        n = self.count
        if n == 0:
            return {name: float("nan") for name in METRICS}
        mae_ = sums[0] / n
        if self.scale is not None:
            scale = self.scale
        elif naive_n and sums[5] > 0:
            scale = sums[5] / naive_n
        else:
            scale = float("nan")
        return {
            "mae": float(mae_),
            "rmse": float(np.sqrt(sums[1] / n)),
            "mape": float(100.0 * sums[2] / sums[3]) if sums[3] else float("nan"),
            "smape": float(100.0 * sums[4] / n),
            "mase": float(mae_ / scale),
        }


def _contributions(a: np.ndarray, f: np.ndarray, naive: np.ndarray) -> np.ndarray:
    err = np.abs(a - f)
    nz = a != 0
    denom = np.abs(a) + np.abs(f)
    sape = np.divide(2.0 * err, denom, out=np.zeros_like(denom), where=denom > 0)
    return np.array(
        [err.sum(), (err**2).sum(), (err[nz] / np.abs(a[nz])).sum(), float(nz.sum()), sape.sum(), naive.sum()]
    )


__all__ = ["BacktestResult", "RollingScore", "backtest", "mase_scale", "plan_windows", "window_origins"]
