"""NLinear and DLinear: direct multi-step linear models fitted by ridge least squares.

Both map the last ``lookback`` values (T) to the next ``output`` values (N) with one linear
layer per output step (Zeng et al., 2023, "Are Transformers Effective for Time Series
Forecasting?"), solved in closed form with numpy — no gradient descent, no torch:

* **NLinear** subtracts the window's last value from inputs and targets (so the model
  sees shapes, not levels) and adds it back to the forecast.
* **DLinear** splits the input into a moving-average trend (kernel ``kernel``, edges
  padded by repetition) and the remainder, with one weight set for each part; inputs and
  targets are taken relative to the window's mean (so the ridge penalty does not fight
  the level, as instance normalisation does in the paper's code).

The ridge penalty is ``ridge`` × the mean diagonal of ``XᵀX`` (scale-free); the intercept is
not penalised. Forecasts beyond ``output`` steps feed the model's own forecasts back in.

**Online** a per-series model keeps the sufficient statistics of its least-squares problem
(``stats_``: the count, sums and cross-products of features and targets), so ``update(y_new)``
adds the windows that the new points complete and solves again: O(new points × features²),
no pass over the history, and the weights equal a refit on the whole history with the same
lookback. Only the last ``lookback + output`` values are kept as context.

**Per series** ``fit(y)`` learns from the windows of one history. **Global**
``fit_global([y1, y2, ...])`` learns one weight set from the windows of many series, each
window also divided by its own scale (instance normalisation), so that series of different
sizes share the weights; :meth:`LinearForecaster.predict_from` then forecasts any series
from its recent values, and ``update`` gives a global model a series' context.

``lookback=None`` picks ``max(2·season_length, output)``, shortened when the history holds
too few windows; with fewer than :data:`MIN_WINDOWS` windows of even the shortest
lookback, the model falls back to the naive forecast and says why in ``fallback_reason_``.
Missing values inside the history are linearly interpolated; leading ones are dropped.

>>> y = np.tile([1.0, 2.0, 3.0, 4.0], 30) + np.arange(120) * 0.1
>>> NLinear(output=4, season_length=4, ridge=1e-6).fit(y).forecast(4).round(2).tolist()
[13.0, 14.1, 15.2, 16.3]
>>> g = DLinear(output=4, season_length=4).fit_global([y, 100 * y])
>>> (g.predict_from(100 * y, 4) / g.predict_from(y, 4)).round(3).tolist()
[100.0, 100.0, 100.0, 100.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models.statistical import clean_history

MIN_WINDOWS = 8
"""Fewer training windows than this: naive fallback."""
_MIN_LOOKBACK = 2


def _check_int(model: str, name: str, value: Any, *, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ForecastError(f"{model}: {name} must be a positive integer, got {value!r}")


def moving_average(x: np.ndarray, kernel: int) -> np.ndarray:
    """Centred moving average along the last axis, edges padded by repeating the end values."""
    if kernel <= 1:
        return x.copy()
    left, right = (kernel - 1) // 2, kernel // 2
    padded = np.concatenate(
        [np.repeat(x[..., :1], left, axis=-1), x, np.repeat(x[..., -1:], right, axis=-1)], axis=-1
    )
    csum = np.cumsum(padded, axis=-1)
    csum = np.concatenate([np.zeros((*x.shape[:-1], 1)), csum], axis=-1)
    return (csum[..., kernel:] - csum[..., :-kernel]) / kernel


class LinearForecaster(Forecaster):
    """Common machinery of NLinear and DLinear (subclasses define :meth:`_features`).

    Learned state: ``weights_`` (features × output), ``bias_`` (output), ``lookback_``,
    ``scaled_`` (True for a global model), ``history_`` (the context the next forecast
    starts from), ``sigma_`` (in-sample error sd per output step) and ``fallback_reason_``.
    """

    def __init__(
        self,
        output: int = 20,
        lookback: int | None = None,
        season_length: int = 1,
        ridge: float = 1e-3,
    ) -> None:
        _check_int(self.name, "output", output)
        _check_int(self.name, "lookback", lookback, allow_none=True)
        _check_int(self.name, "season_length", season_length)
        if isinstance(ridge, bool) or not ridge >= 0:
            raise ForecastError(f"{self.name}: ridge must be a number >= 0, got {ridge!r}")
        self.output = output
        self.lookback = lookback
        self.season_length = season_length
        self.ridge = ridge
        super().__init__()

    def _reset(self) -> None:
        self.weights_: np.ndarray | None = None
        self.bias_ = np.zeros(0)
        self.lookback_ = 0
        self.scaled_ = False
        self.history_ = np.empty(0)
        self.sigma_ = np.zeros(0)
        self.fallback_reason_: str | None = None
        self.stats_: dict[str, Any] | None = None

    # ---- features (subclass) -----------------------------------------------------------
    def _features(self, x: np.ndarray) -> np.ndarray:
        """Model inputs from level-free windows ``x`` (rows × lookback)."""
        raise NotImplementedError

    # ---- fitting -----------------------------------------------------------------------
    def _wanted_lookback(self) -> int:
        if self.lookback is not None:
            return int(self.lookback)
        return max(2 * int(self.season_length), int(self.output), _MIN_LOOKBACK)

    def _choose_lookback(self, lengths: Sequence[int]) -> int | None:
        """The longest lookback ≤ the wanted one leaving at least MIN_WINDOWS windows."""
        n_out = int(self.output)
        wanted = self._wanted_lookback()
        for t in (wanted, *sorted({max(t, _MIN_LOOKBACK) for t in (wanted // 2, wanted // 4)}, reverse=True)):
            if sum(max(n - t - n_out + 1, 0) for n in lengths) >= MIN_WINDOWS:
                return t
        return None

    def _windows(self, y: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        n_out = int(self.output)
        view = np.lib.stride_tricks.sliding_window_view(y, t + n_out)
        return view[:, :t], view[:, t:]

    def _center(self, x: np.ndarray) -> np.ndarray:
        """The level subtracted from each window and its targets (subclass), shape (rows, 1)."""
        raise NotImplementedError

    def _design(self, x: np.ndarray, scaled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Level-free (and optionally scale-free) features; the levels and the scales."""
        last = self._center(x)
        scale = np.ones_like(last)
        if scaled:
            scale = x.std(axis=1, keepdims=True)
            scale = np.where(scale > 1e-12, scale, 1.0)
        return self._features((x - last) / scale), last, scale

    def _solve(self, xs: list[np.ndarray], ys: list[np.ndarray], scaled: bool) -> None:
        x, y = np.concatenate(xs), np.concatenate(ys)
        feats, last, scale = self._design(x, scaled)
        target = (y - last) / scale
        f_mean, t_mean = feats.mean(axis=0), target.mean(axis=0)
        fc, tc = feats - f_mean, target - t_mean
        gram = fc.T @ fc
        penalty = float(self.ridge) * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
        gram[np.diag_indices_from(gram)] += penalty
        self.weights_ = np.linalg.solve(gram, fc.T @ tc)
        self.bias_ = t_mean - f_mean @ self.weights_
        resid = (target - (feats @ self.weights_ + self.bias_)) * scale
        self.sigma_ = np.sqrt(np.mean(resid**2, axis=0) * len(resid) / max(len(resid) - 1, 1))
        self.scaled_ = scaled

    def _fit(self, y: np.ndarray) -> None:
        self.history_ = clean_history(y)
        t = self._choose_lookback([self.history_.size])
        if t is None:
            self.fallback_reason_ = (
                f"history of {self.history_.size} points gives fewer than {MIN_WINDOWS} windows of "
                f"input+output={_MIN_LOOKBACK}+{self.output}: naive forecast"
            )
            return
        self.lookback_ = t
        x, target = self._windows(self.history_, t)
        self._solve([x], [target], scaled=False)
        feats, last, _ = self._design(x, scaled=False)
        self.stats_ = _sums(feats, target - last)
        self.history_ = self.history_[-(t + int(self.output)) :].copy()

    def fit_global(self, series: Sequence[np.ndarray]) -> Self:
        """Learn one weight set from the windows of every series (oldest first each).

        Series too short for a window are skipped; raises :class:`ForecastError` when none
        is usable. The model keeps no per-series context: use :meth:`predict_from`, or
        ``update(y)`` to give it a series' recent values before :meth:`forecast`.
        """
        if isinstance(series, np.ndarray) and series.ndim == 1:
            raise ForecastError(f"{self.name}: fit_global takes a list of series; use fit(y) for one series")
        cleaned = []
        for i, s in enumerate(series):
            arr = np.asarray(s, dtype="float64").reshape(-1)
            if np.isfinite(arr).any():
                cleaned.append(clean_history(arr))
            elif arr.size:
                continue
            else:
                raise ForecastError(f"{self.name}: series {i} of fit_global is empty; drop it or pass values")
        t = self._choose_lookback([s.size for s in cleaned])
        if t is None:
            raise ForecastError(
                f"{self.name}: {len(cleaned)} series give fewer than {MIN_WINDOWS} training windows; "
                "pass longer histories or a smaller output"
            )
        self.reset()
        self.lookback_ = t
        usable = [s for s in cleaned if s.size >= t + int(self.output)]
        pairs = [self._windows(s, t) for s in usable]
        self._solve([p[0] for p in pairs], [p[1] for p in pairs], scaled=True)
        self.n_obs_ = sum(s.size for s in cleaned)
        return self

    def _update(self, y_new: np.ndarray) -> None:
        combined = np.concatenate([self.history_, y_new])
        combined = clean_history(combined) if np.isfinite(combined).any() else combined
        if self.stats_ is None or self.weights_ is None or not np.isfinite(y_new).all():
            self.history_ = combined
            if self.stats_ is not None:  # a missing value: interpolated later, so no longer exact
                self.stats_ = None
            return
        t, n_out = self.lookback_, int(self.output)
        fresh = min(y_new.size, combined.size - t - n_out + 1)  # windows the new points complete
        if fresh > 0:
            x, target = self._windows(combined[-(t + n_out + fresh - 1) :], t)
            feats, last, _ = self._design(x, scaled=False)
            added = _sums(feats, target - last)
            self.stats_ = {key: self.stats_[key] + added[key] for key in added}
            self._solve_stats(self.stats_)
        self.history_ = combined[-(t + n_out) :].copy()

    def _solve_stats(self, stats: dict[str, Any]) -> None:
        """Weights, bias and error sd from the sufficient statistics (as :meth:`_solve` from the windows)."""
        n = stats["n"]
        f_mean, t_mean = stats["f"] / n, stats["t"] / n
        gram = stats["ff"] - n * np.outer(f_mean, f_mean)
        cross = stats["ft"] - n * np.outer(f_mean, t_mean)
        target_ss = stats["tt"] - n * t_mean**2
        penalty = float(self.ridge) * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
        weights = np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), cross)
        rss = (
            target_ss
            - 2.0 * np.einsum("ij,ij->j", weights, cross)
            + np.einsum("ij,ik,kj->j", weights, gram, weights)
        )
        self.weights_, self.bias_ = weights, t_mean - f_mean @ weights
        self.sigma_ = np.sqrt(np.maximum(rss, 0.0) / max(n - 1, 1))

    # ---- forecasting -------------------------------------------------------------------
    def predict_from(self, context: np.ndarray, horizon: int) -> np.ndarray:
        """Forecast ``horizon`` steps after ``context`` (a series' recent values) with the learned weights."""
        self._check_ready(horizon)
        arr = np.asarray(context, dtype="float64").reshape(-1)
        if not np.isfinite(arr).any():
            raise ForecastError(f"{self.name}: context has no observed value; pass a series' recent values")
        arr = clean_history(arr)
        if self.weights_ is None:
            return np.full(horizon, arr[-1])
        t = self.lookback_
        if arr.size < t:
            arr = np.concatenate([np.full(t - arr.size, arr[0]), arr])
        window = arr[-t:]
        out: list[np.ndarray] = []
        steps = 0
        while steps < horizon:
            feats, last, scale = self._design(window[None, :], self.scaled_)
            block = ((feats @ self.weights_ + self.bias_) * scale + last)[0]
            out.append(block)
            steps += block.size
            window = np.concatenate([window, block])[-t:]
        return np.concatenate(out)[:horizon]

    def _forecast(self, horizon: int) -> np.ndarray:
        if self.history_.size == 0:
            raise ForecastError(
                f"{self.name}: a global model has no series context; "
                "call update(y) or predict_from(y, horizon)"
            )
        return self.predict_from(self.history_, horizon)

    def _forecast_sd(self, horizon: int) -> np.ndarray:
        if self.weights_ is None:
            diffs = np.diff(self.history_)
            sigma = float(np.sqrt(np.mean(diffs**2))) if diffs.size else float("nan")
            return sigma * np.sqrt(np.arange(1, horizon + 1))
        if self.scaled_:
            return np.full(horizon, np.nan)  # global sigma is in scaled units; use conformal intervals
        n_out = int(self.output)
        steps = np.arange(horizon)
        blocks = steps // n_out
        return self.sigma_[steps % n_out] * np.sqrt(blocks + 1)


def _sums(feats: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """Sufficient statistics of a least-squares problem: count, sums, cross-products."""
    return {
        "n": feats.shape[0],
        "f": feats.sum(axis=0),
        "t": target.sum(axis=0),
        "ff": feats.T @ feats,
        "ft": feats.T @ target,
        "tt": (target**2).sum(axis=0),
    }


class NLinear(LinearForecaster):
    """Linear map of the window relative to its last value (NLinear).

    >>> NLinear(output=2, lookback=3).fit(np.arange(20.0)).forecast(2).round(3).tolist()
    [20.0, 21.0]
    """

    name = "nlinear"

    def _center(self, x: np.ndarray) -> np.ndarray:
        return x[:, -1:]

    def _features(self, x: np.ndarray) -> np.ndarray:
        return x


class DLinear(LinearForecaster):
    """Separate linear maps of the moving-average trend and the remainder (DLinear).

    ``kernel``: moving-average length (``None``: the season length, at least 3, at most the lookback).

    >>> DLinear(output=2, lookback=6).fit(np.arange(30.0)).forecast(2).round(3).tolist()
    [30.0, 31.0]
    """

    name = "dlinear"

    def __init__(
        self,
        output: int = 20,
        lookback: int | None = None,
        season_length: int = 1,
        ridge: float = 1e-3,
        kernel: int | None = None,
    ) -> None:
        _check_int("dlinear", "kernel", kernel, allow_none=True)
        self.kernel = kernel
        super().__init__(output=output, lookback=lookback, season_length=season_length, ridge=ridge)

    def _center(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=1, keepdims=True)

    def _features(self, x: np.ndarray) -> np.ndarray:
        k = self.kernel if self.kernel is not None else max(int(self.season_length), 3)
        k = min(int(k), x.shape[1])
        trend = moving_average(x, k)
        return np.concatenate([trend, x - trend], axis=1)
