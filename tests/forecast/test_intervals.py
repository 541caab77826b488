"""Split-conformal intervals: the finite-sample quantile, held-out coverage, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.backtest import backtest
from sparkhu.forecast.intervals import ConformalIntervals
from sparkhu.forecast.models import AutoETS


def test_width_is_the_corrected_rank_of_absolute_residuals() -> None:
    residuals = np.arange(1.0, 20.0)[:, None] * np.array([[1.0, -2.0]])  # 19 windows, 2 steps
    ci = ConformalIntervals(coverage=0.9).fit(residuals)
    # rank ceil(20 * 0.9) = 18 of 1..19
    assert ci.widths_.tolist() == [18.0, 36.0] and ci.guaranteed_.all()
    assert ci.min_windows == 9
    few = ConformalIntervals(coverage=0.9).fit(residuals[:5])
    assert few.widths_.tolist() == [5.0, 10.0] and not few.guaranteed_.any()
    assert ConformalIntervals(0.5).fit(np.array([1.0, np.nan, 3.0])).widths_.tolist() == [3.0]


def test_held_out_coverage_reaches_the_target() -> None:
    rng = np.random.default_rng(4)
    n = 1400
    t = np.arange(n)
    y = 50 + 5 * np.sin(2 * np.pi * t / 12) + np.cumsum(rng.normal(0, 0.3, n)) * 0.2 + rng.standard_t(5, n)
    calibration, held_out = y[:1000], y
    bt = backtest(
        calibration, AutoETS(season_length=12), horizon=6, step=6, windows=60, season_length=12, refit=False
    )
    ci = ConformalIntervals(coverage=0.9).fit(bt.residuals)
    assert ci.guaranteed_.all()
    test = backtest(
        held_out, AutoETS(season_length=12), horizon=6, step=6, windows=60, season_length=12, refit=False
    )
    assert test.origins.min() >= 1000  # the evaluation windows are after the calibration data
    lower, upper = ci.interval(test.forecasts[0])
    np.testing.assert_allclose(upper - lower, 2 * ci.widths_)
    covered = (np.abs(test.residuals) <= ci.widths_[None, :]).mean()
    assert 0.85 <= covered <= 0.97


def test_interval_extends_beyond_the_fitted_horizon() -> None:
    ci = ConformalIntervals(0.5).fit(np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]))
    lower, upper = ci.interval(np.zeros(4))
    assert upper.tolist() == [1.0, 2.0, 2.0, 2.0] and lower.tolist() == [-1.0, -2.0, -2.0, -2.0]


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ForecastError, match=r"coverage must be in \(0, 1\), got 1.5"):
        ConformalIntervals(1.5)
    with pytest.raises(ForecastError, match=r"residuals must have shape \(windows, horizon\)"):
        ConformalIntervals().fit(np.zeros((2, 2, 2)))
    with pytest.raises(ForecastError, match="no finite residual at horizon step 2"):
        ConformalIntervals().fit(np.array([[1.0, np.nan]]))
    with pytest.raises(ForecastError, match="interval before fit"):
        ConformalIntervals().interval(np.zeros(2))
