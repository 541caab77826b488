"""Error metrics against hand computations, NaN handling, MASE scale guards, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.metrics import mae, mape, mase, mase_scale, rmse, score, smape


def test_metrics_match_hand_computation() -> None:
    y = np.array([10.0, 20.0, 0.0, 40.0])
    f = np.array([12.0, 15.0, 1.0, 40.0])
    assert mae(y, f) == pytest.approx((2 + 5 + 1 + 0) / 4)
    assert rmse(y, f) == pytest.approx(np.sqrt((4 + 25 + 1 + 0) / 4))
    assert mape(y, f) == pytest.approx(100 * (0.2 + 0.25 + 0.0) / 3)  # the zero actual is skipped
    assert smape(y, f) == pytest.approx(100 * (4 / 22 + 10 / 35 + 2 / 1 + 0) / 4)
    assert smape(np.zeros(2), np.zeros(2)) == 0.0


def test_mase_uses_the_seasonal_naive_scale_of_the_history() -> None:
    history = np.array([1.0, 5.0, 2.0, 7.0, 3.0, 9.0])  # season 2 diffs: 1, 2, 1, 2 -> 1.5
    assert mase_scale(history, 2) == pytest.approx(1.5)
    assert mase(
        np.array([4.0, 10.0]), np.array([3.0, 13.0]), insample=history, season_length=2
    ) == pytest.approx(2.0 / 1.5)
    assert mase_scale(history, 10) == pytest.approx(
        np.mean(np.abs(np.diff(history)))
    )  # shorter than a season


def test_mase_scale_is_never_zero() -> None:
    assert mase_scale(np.full(10, 4.0), 1) == pytest.approx(4.0)  # constant: mean absolute level
    assert mase_scale(np.zeros(10), 1) == 1.0
    assert mase_scale(np.array([np.nan, np.nan]), 1) == 1.0
    assert np.isfinite(mase(np.array([1.0]), np.array([2.0]), insample=np.zeros(5)))


def test_nan_pairs_are_ignored() -> None:
    y = np.array([1.0, np.nan, 3.0])
    f = np.array([2.0, 5.0, np.nan])
    assert mae(y, f) == 1.0
    assert np.isnan(mae(np.array([np.nan]), np.array([1.0])))
    table = score(np.array([[1.0, 2.0]]), np.array([[1.0, 4.0]]), insample=np.arange(5.0))
    expected = {"mae": 1.0, "rmse": np.sqrt(2), "mape": 50.0, "smape": 100 / 3, "mase": 1.0}
    assert table == pytest.approx(expected)


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ForecastError, match=r"actuals have shape \(3,\) but forecasts \(2,\)"):
        mae(np.zeros(3), np.zeros(2))
    with pytest.raises(ForecastError, match="unknown metric\\(s\\) 'r2'"):
        score(np.zeros(2), np.zeros(2), insample=np.zeros(3), metrics=("mae", "r2"))
    with pytest.raises(ForecastError, match="season_length must be a positive integer, got 0"):
        mase_scale(np.zeros(3), 0)
