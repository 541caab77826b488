"""Supervised windows for direct multi-step models, built chronologically with numpy.

A window pairs ``input_size`` (T) consecutive values with the ``horizon`` (N) values that follow
them. Window ``i`` reads ``y[i : i+T]`` and targets ``y[i+T : i+T+N]``, so windows are in time
order, oldest first (the original system built them newest first, which silently shuffled
the hold-out into training). Everything is one :func:`~numpy.lib.stride_tricks.sliding_window_view`
of the series: no Python loop per window.

A history is split in time for validation: the first part trains, and validation windows
have every target after the split point (their inputs may reach back before it, which leaks
nothing). A scaler is fitted on the training part only.

>>> x, y = sliding_windows(np.arange(6.0), input_size=3, horizon=2)
>>> x.tolist(), y.tolist()
([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
>>> split_point(100, 0.2), split_point(100, 0.0)
(80, 100)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sparkhu.errors import ForecastError


def sliding_windows(
    y: np.ndarray, input_size: int, horizon: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(W, T)`` and targets ``(W, N)`` of every complete window of ``y``, oldest first.

    The arrays are read-only views into ``y`` (copy them to write). A series shorter than
    ``T + N`` gives zero windows.
    """
    if input_size < 1 or horizon < 1 or stride < 1:
        raise ForecastError(
            f"windows: input_size, horizon and stride must be >= 1, got {input_size}, {horizon}, {stride}"
        )
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ForecastError(f"windows: expected a 1-D series, got shape {arr.shape}")
    width = input_size + horizon
    if arr.size < width:
        empty = arr[:0]
        return empty.reshape(0, input_size), empty.reshape(0, horizon)
    view = sliding_window_view(arr, width)[::stride]
    return view[:, :input_size], view[:, input_size:]


def split_point(n: int, val_fraction: float) -> int:
    """Index where validation begins for ``n`` values: the last ``val_fraction`` is held out."""
    if not 0.0 <= val_fraction < 1.0:
        raise ForecastError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    return n - round(n * val_fraction)


@dataclass(frozen=True)
class MinMaxScaler:
    """``(y - low) / (high - low)``, fitted on a training part; ``kind="none"`` is the identity."""

    low: float
    high: float

    @classmethod
    def fit(cls, y: np.ndarray, kind: str, what: str) -> MinMaxScaler:
        """Fit on ``y`` (no NaN); ``kind`` is ``"minmax"`` or ``"none"``; ``what`` names the series."""
        if kind == "none":
            return cls(0.0, 1.0)
        if kind != "minmax":
            raise ForecastError(f"{what}: unknown scaler {kind!r}; use 'minmax' or 'none'")
        low, high = float(np.min(y)), float(np.max(y))
        if not high > low:
            raise ForecastError(
                f"{what}: the training part is constant ({low!r}); a min-max scaled model cannot "
                "learn from it: use a naive model for constant series"
            )
        return cls(low, high)

    def transform(self, y: np.ndarray) -> np.ndarray:
        """Scaled copy of ``y`` as float32 (what the network consumes)."""
        return ((np.asarray(y, dtype="float64") - self.low) / (self.high - self.low)).astype("float32")

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Back to the original units, as float64."""
        return np.asarray(y, dtype="float64") * (self.high - self.low) + self.low


@dataclass(frozen=True)
class WindowSet:
    """Scaled training and validation windows pooled over one or more series.

    ``x_*``: ``(W, T)`` float32, ``y_*``: ``(W, N)`` float32, ``scalers``: one per series.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    scalers: list[MinMaxScaler]


def training_windows(
    series: Sequence[np.ndarray],
    input_size: int,
    horizon: int,
    val_fraction: float,
    scaler: str,
    what: str,
) -> WindowSet:
    """Chronologically split, scale and window every series, then pool the windows.

    Each series is split at :func:`split_point`; its scaler is fitted on its training part;
    the training part must hold one whole window and (when ``val_fraction`` > 0) the held-out
    part at least ``horizon`` values. Raises :class:`ForecastError` naming the series (by
    position, prefixed with ``what``) for NaN, too short or constant input.
    """
    width = input_size + horizon
    xs_t, ys_t, xs_v, ys_v, scalers = [], [], [], [], []
    for k, y in enumerate(series):
        name = what if len(series) == 1 else f"{what} series #{k}"
        y = np.asarray(y, dtype="float64")
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise ForecastError(
                f"{name}: history has {bad.size} NaN/infinite values (first at index {bad[0]}); "
                "impute them first (the pipeline's clean data has none)"
            )
        cut = split_point(y.size, val_fraction)
        if cut < width or (val_fraction > 0 and y.size - cut < horizon):
            need = max(int(np.ceil(width / (1 - val_fraction))), int(np.ceil(horizon / (val_fraction or 1))))
            raise ForecastError(
                f"{name}: {y.size} values are too few for input_size={input_size}, horizon={horizon} "
                f"and val_fraction={val_fraction}: need about {need}; pass a longer history or "
                "smaller windows"
            )
        fitted = MinMaxScaler.fit(y[:cut], scaler, name)
        scaled = fitted.transform(y)
        x, t = sliding_windows(scaled[:cut], input_size, horizon)
        xs_t.append(x)
        ys_t.append(t)
        if val_fraction > 0:
            x, t = sliding_windows(scaled[cut - input_size :], input_size, horizon)
            xs_v.append(x)
            ys_v.append(t)
        scalers.append(fitted)
    if not scalers:
        raise ForecastError(f"{what}: no series given; pass at least one history")

    def pool(parts: list[np.ndarray], width: int) -> np.ndarray:
        if not parts:
            return np.empty((0, width), dtype="float32")
        return np.ascontiguousarray(np.concatenate(parts), dtype="float32")

    return WindowSet(
        pool(xs_t, input_size), pool(ys_t, horizon), pool(xs_v, input_size), pool(ys_v, horizon), scalers
    )
