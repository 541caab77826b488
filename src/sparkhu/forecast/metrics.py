"""Point-forecast error metrics: MAE, RMSE, MAPE, sMAPE and MASE.

Every metric takes the actual values and the forecasts (same shape, any number of
dimensions) and ignores pairs where either is NaN; with no pair left the score is NaN.
Percentages are in percent (MAPE skips actuals equal to zero; sMAPE counts a pair that is
zero on both sides as no error).

MASE divides the MAE by the in-sample MAE of the seasonal naive forecast on the training
history (``insample``), season ``season_length``; histories shorter than one season use
the one-step naive scale instead. When that scale is zero (a constant history) the mean
absolute value of the history is used, and when that too is zero, 1 — so MASE is always
finite and comparable across models on the same series (:func:`mase_scale` exposes it).

>>> y, yhat = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
>>> mae(y, yhat), round(rmse(y, yhat), 4), round(smape(y, yhat), 2)
(1.0, 1.291, 35.56)
>>> mase(y, yhat, insample=np.array([0.0, 2.0, 4.0, 6.0]), season_length=1)
0.5
>>> sorted(METRICS)
['mae', 'mape', 'mase', 'rmse', 'smape']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sparkhu.errors import ForecastError


def _pairs(y: np.ndarray, yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y, dtype="float64")
    f = np.asarray(yhat, dtype="float64")
    if a.shape != f.shape:
        raise ForecastError(
            f"metric: actuals have shape {a.shape} but forecasts {f.shape}; pass one per actual"
        )
    keep = np.isfinite(a) & np.isfinite(f)
    return a[keep], f[keep]


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute error."""
    a, f = _pairs(y, yhat)
    return _mean(np.abs(a - f))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error."""
    a, f = _pairs(y, yhat)
    return float(np.sqrt(_mean((a - f) ** 2)))


def mape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute percentage error (%), over actuals that are not zero."""
    a, f = _pairs(y, yhat)
    nz = a != 0
    return 100.0 * _mean(np.abs((a[nz] - f[nz]) / a[nz]))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE (%): mean of ``2|y-ŷ| / (|y|+|ŷ|)``, 0 where both are zero (range 0..200)."""
    a, f = _pairs(y, yhat)
    denom = np.abs(a) + np.abs(f)
    ratio = np.divide(2.0 * np.abs(a - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return 100.0 * _mean(ratio)


def mase_scale(insample: np.ndarray, season_length: int = 1) -> float:
    """The in-sample MAE of the seasonal naive forecast: MASE's denominator (never zero).

    Falls back to the one-step naive scale when the history is shorter than a season plus
    one, to the mean absolute value when the differences are all zero, then to 1.
    """
    h = np.asarray(insample, dtype="float64").reshape(-1)
    if (
        isinstance(season_length, bool)
        or not isinstance(season_length, int | np.integer)
        or season_length < 1
    ):
        raise ForecastError(f"mase: season_length must be a positive integer, got {season_length!r}")
    m = int(season_length) if h.size > season_length else 1
    diffs = np.abs(h[m:] - h[:-m]) if h.size > m else np.empty(0)
    diffs = diffs[np.isfinite(diffs)]
    scale = float(diffs.mean()) if diffs.size else 0.0
    if scale > 0:
        return scale
    finite = h[np.isfinite(h)]
    level = float(np.abs(finite).mean()) if finite.size else 0.0
    return level if level > 0 else 1.0


def mase(y: np.ndarray, yhat: np.ndarray, *, insample: np.ndarray, season_length: int = 1) -> float:
    """Mean absolute scaled error: MAE over the seasonal naive in-sample MAE of ``insample``."""
    return mae(y, yhat) / mase_scale(insample, season_length)


Metric = Callable[..., float]

METRICS: dict[str, Metric] = {"mae": mae, "rmse": rmse, "mape": mape, "smape": smape, "mase": mase}
"""Metric name → function; ``mase`` needs ``insample=`` and ``season_length=``."""


def check_metrics(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``names`` validated against :data:`METRICS` (ForecastError naming the unknown one)."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ForecastError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}")
    return tuple(names)


def score(
    y: np.ndarray,
    yhat: np.ndarray,
    *,
    insample: np.ndarray,
    season_length: int = 1,
    metrics: tuple[str, ...] = tuple(METRICS),
) -> dict[str, float]:
    """Every metric in ``metrics`` for one forecast, as ``{name: value}``."""
    out: dict[str, float] = {}
    for name in check_metrics(metrics):
        if name == "mase":
            out[name] = mase(y, yhat, insample=insample, season_length=season_length)
        else:
            out[name] = METRICS[name](y, yhat)
    return out
