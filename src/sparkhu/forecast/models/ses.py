"""Simple exponential smoothing: a flat forecast at the smoothed level.

The level follows ``l[t] = alpha*y[t] + (1-alpha)*l[t-1]`` from ``l[0] = y[0]``; every forecast step
is the last level. With ``alpha=None`` the smoothing weight is chosen by minimising the
one-step-ahead squared error over the history: a coarse grid, then a golden-section search
around the best grid point (no SciPy). Missing observations (NaN) are skipped, which is
exactly "the level stays where it was". The recursion is evaluated in blocks as a
lower-triangular matrix product, vectorised over the candidate weights, so fitting long
histories costs a few matrix products rather than a Python loop per point.

>>> m = SES(alpha=0.5).fit(np.array([1.0, 3.0, 5.0]))
>>> float(m.level_), m.forecast(3).tolist()
(3.5, [3.5, 3.5, 3.5])
>>> round(SES().fit(np.arange(50.0)).alpha_, 2)   # a trend pushes alpha to its upper end
0.99
"""

from __future__ import annotations

import numpy as np

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster

_BLOCK = 64
_CACHED = 16  # updates of up to this many points reuse a per-model kernel (at most ~22 KB)
_GRID = np.array([0.01, *np.arange(0.05, 0.951, 0.05), 0.99])
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_ALPHA_MIN, _ALPHA_MAX = 0.01, 0.99


def _kernel(alphas: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``beta**(i+1)`` (A, n) and the lower-triangular ``beta**(i-j)`` (A, n, n), beta = 1 - alpha."""
    beta = 1.0 - alphas
    lag = np.arange(n)[:, None] - np.arange(n)[None, :]
    powers = beta[:, None] ** np.arange(n + 1)[None, :]  # (A, n+1)
    weights = np.where(lag >= 0, powers[:, np.clip(lag, 0, None)], 0.0)  # (A, n, n)
    return powers[:, 1:], weights


def smooth_levels(y: np.ndarray, alphas: np.ndarray, level0: np.ndarray) -> np.ndarray:
    """Levels after each observation of ``y`` (no NaN) for every weight in ``alphas``.

    ``level0`` (one per weight) is the level before ``y[0]``. Returns shape
    ``(len(alphas), len(y))``. Evaluated in blocks of 64 points with non-negative powers
    only, so it neither overflows nor underflows.
    """
    alphas = np.asarray(alphas, dtype="float64").reshape(-1)
    level = np.broadcast_to(np.asarray(level0, dtype="float64"), alphas.shape).copy()
    out = np.empty((alphas.size, y.size))
    kernels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for lo in range(0, y.size, _BLOCK):
        block = y[lo : lo + _BLOCK]
        n = block.size
        if n not in kernels:
            kernels[n] = _kernel(alphas, n)
        carry, weights = kernels[n]
        levels = carry * level[:, None] + alphas[:, None] * (weights @ block)
        out[:, lo : lo + n] = levels
        level = levels[:, -1]
    return out


def one_step_sse(y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Sum of squared one-step-ahead errors of SES on ``y`` (no NaN, ≥ 2 points) per weight."""
    levels = smooth_levels(y[1:], alphas, np.full(np.size(alphas), y[0]))
    previous = np.concatenate([np.full((levels.shape[0], 1), y[0]), levels[:, :-1]], axis=1)
    return ((y[1:][None, :] - previous) ** 2).sum(axis=1)


class SES(Forecaster):
    """Simple exponential smoothing with a fixed or an optimised weight.

    ``alpha``: smoothing weight in (0, 1]; ``None`` chooses it on each :meth:`fit` by
    minimising the one-step squared error (``update`` keeps the chosen weight).
    Learned state: ``alpha_``, ``level_``, ``sse_`` and ``n_errors_`` (for intervals).
    """

    name = "ses"

    alpha_: float
    level_: float
    sse_: float
    n_errors_: int

    def __init__(self, alpha: float | None = None) -> None:
        if alpha is not None and (isinstance(alpha, bool) or not 0.0 < float(alpha) <= 1.0):
            raise ForecastError(f"ses: alpha must be in (0, 1] or None (optimised), got {alpha!r}")
        self.alpha = alpha
        super().__init__()

    def _reset(self) -> None:
        self.alpha_ = float("nan") if self.alpha is None else float(self.alpha)
        self.level_ = float("nan")
        self.sse_ = 0.0
        self.n_errors_ = 0
        self._kernels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _fit(self, y: np.ndarray) -> None:
        y = y[np.isfinite(y)]
        if self.alpha is None:
            self.alpha_ = _choose_alpha(y) if y.size > 2 else 0.5
        self.level_ = float(y[0])
        self._absorb(y[1:])

    def _update(self, y_new: np.ndarray) -> None:
        self._absorb(y_new[np.isfinite(y_new)])

    def _absorb(self, y: np.ndarray) -> None:
        if y.size == 0:
            return
        if y.size <= _CACHED:  # the online case: a few points, with a small kernel cached per size
            kernel = self._kernels.get(y.size)
            if kernel is None:
                kernel = self._kernels[y.size] = _kernel(np.array([self.alpha_]), y.size)
            levels = kernel[0][0] * self.level_ + self.alpha_ * (kernel[1][0] @ y)
        else:
            levels = smooth_levels(y, np.array([self.alpha_]), np.array([self.level_]))[0]
        previous = np.concatenate([[self.level_], levels[:-1]])
        self.sse_ += float(((y - previous) ** 2).sum())
        self.n_errors_ += int(y.size)
        self.level_ = float(levels[-1])

    def _forecast(self, horizon: int) -> np.ndarray:
        return np.full(horizon, self.level_)

    def _forecast_sd(self, horizon: int) -> np.ndarray:
        if self.n_errors_ == 0:
            return np.full(horizon, np.nan)
        sigma2 = self.sse_ / self.n_errors_
        steps = np.arange(horizon)
        return np.sqrt(sigma2 * (1.0 + steps * self.alpha_**2))


def _choose_alpha(y: np.ndarray) -> float:
    """The weight in [0.01, 0.99] minimising the one-step SSE: grid, then golden section."""
    sse = one_step_sse(y, _GRID)
    best = int(np.argmin(sse))
    lo = _GRID[max(best - 1, 0)]
    hi = _GRID[min(best + 1, _GRID.size - 1)]
    a, b = lo + (1 - _GOLDEN) * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = one_step_sse(y, np.array([a, b]))
    for _ in range(30):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - _GOLDEN) * (hi - lo)
            fa = float(one_step_sse(y, np.array([a]))[0])
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = float(one_step_sse(y, np.array([b]))[0])
        if hi - lo < 1e-4:
            break
    candidates = np.array([_GRID[best], (lo + hi) / 2.0])
    chosen = candidates[int(np.argmin(one_step_sse(y, candidates)))]
    return float(np.clip(chosen, _ALPHA_MIN, _ALPHA_MAX))
