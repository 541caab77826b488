"""Split-conformal forecast intervals from back-test residuals, one width per horizon step.

For horizon step ``k`` the half-width is the ``⌈(n+1)·coverage⌉``-th smallest of the
``n`` absolute back-test residuals at that step (the finite-sample corrected quantile):
if future errors are exchangeable with the back-test errors, the interval
``forecast ± width`` covers the actual value with probability at least ``coverage``.
When ``n`` is too small for the requested coverage (``⌈(n+1)·coverage⌉ > n``) the
guarantee needs an infinite width; the width is then the largest residual seen and
``guaranteed`` is False for that step — collect more back-test windows to restore it.
Steps beyond the fitted horizon use the last step's width. NaN residuals are ignored.

>>> residuals = np.array([[1.0, -2.0], [-3.0, 4.0], [0.5, 1.0], [2.0, -1.0]])
>>> ci = ConformalIntervals(coverage=0.75).fit(residuals)
>>> ci.widths_.tolist(), ci.guaranteed_.tolist()
([3.0, 4.0], [True, True])
>>> lower, upper = ci.interval(np.array([10.0, 10.0, 10.0]))
>>> lower.tolist(), upper.tolist()
([7.0, 6.0, 6.0], [13.0, 14.0, 14.0])
"""

from __future__ import annotations

import math
from typing import Self

import numpy as np

from sparkhu.errors import ForecastError


class ConformalIntervals:
    """Per-step absolute-residual quantiles with the finite-sample correction.

    ``coverage``: the target probability in (0, 1). Learned state: ``widths_`` (one per
    horizon step), ``counts_`` (residuals per step) and ``guaranteed_`` (whether each width
    carries the finite-sample guarantee).
    """

    def __init__(self, coverage: float = 0.9) -> None:
        if isinstance(coverage, bool) or not 0.0 < float(coverage) < 1.0:
            raise ForecastError(f"conformal: coverage must be in (0, 1), got {coverage!r}")
        self.coverage = coverage
        self.widths_ = np.empty(0)
        self.counts_ = np.empty(0, dtype=int)
        self.guaranteed_ = np.empty(0, dtype=bool)

    def fit(self, residuals: np.ndarray) -> Self:
        """Learn the widths from back-test residuals, shape (windows, horizon) (1-D = one step).

        Raises :class:`ForecastError` when a step has no finite residual.
        """
        r = np.asarray(residuals, dtype="float64")
        if r.ndim == 1:
            r = r[:, None]
        if r.ndim != 2 or r.size == 0:
            raise ForecastError(
                f"conformal: residuals must have shape (windows, horizon), got {r.shape}; "
                "pass BacktestResult.residuals"
            )
        scores = np.sort(np.abs(r), axis=0)  # NaN sorts last
        counts = np.isfinite(r).sum(axis=0)
        if (counts == 0).any():
            step = int(np.argmax(counts == 0)) + 1
            raise ForecastError(
                f"conformal: no finite residual at horizon step {step}; back-test on more windows"
            )
        rank = np.ceil((counts + 1) * float(self.coverage)).astype(int)  # 1-based rank
        guaranteed = rank <= counts
        rank = np.minimum(rank, counts)
        self.widths_ = scores[rank - 1, np.arange(r.shape[1])]
        self.counts_ = counts
        self.guaranteed_ = guaranteed
        return self

    @property
    def min_windows(self) -> int:
        """Fewest residuals per step for which the width carries the guarantee."""
        return math.ceil(float(self.coverage) / (1.0 - float(self.coverage)) - 1e-9)

    def width(self, horizon: int) -> np.ndarray:
        """Half-widths for steps 1..``horizon`` (the last fitted step's width beyond the fitted horizon)."""
        if self.widths_.size == 0:
            raise ForecastError("conformal: interval before fit; call fit(residuals) first")
        idx = np.minimum(np.arange(int(horizon)), self.widths_.size - 1)
        return self.widths_[idx]

    def interval(self, point_forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` around a point forecast whose k-th value is the step-k forecast."""
        f = np.asarray(point_forecast, dtype="float64").reshape(-1)
        w = self.width(f.size)
        return f - w, f + w

    def __repr__(self) -> str:
        return f"ConformalIntervals(coverage={self.coverage!r})"
