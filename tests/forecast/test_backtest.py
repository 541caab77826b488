"""Rolling-origin back-tests and the streaming score: windows, refit modes, scores, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.backtest import RollingScore, backtest, plan_windows
from sparkhu.forecast.metrics import mae, mase
from sparkhu.forecast.models import SES, AutoETS, SeasonalNaive


def test_windows_end_at_the_last_point_and_respect_min_train() -> None:
    assert plan_windows(100, horizon=10, step=5, windows=3)[3].tolist() == [80, 85, 90]
    assert plan_windows(30, horizon=10, windows=5, season_length=6)[3].tolist() == [20]  # 0 and 10 < 12


def test_backtest_records_forecasts_actuals_and_scores_per_window() -> None:
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=80)) + 50
    result = backtest(y, SES(alpha=0.5), horizon=4, step=2, windows=3)
    assert result.origins.tolist() == [72, 74, 76] and result.windows == 3
    for i, origin in enumerate(result.origins):
        expected = SES(alpha=0.5).fit(y[:origin]).forecast(4)
        np.testing.assert_allclose(result.forecasts[i], expected)
        np.testing.assert_array_equal(result.actuals[i], y[origin : origin + 4])
        assert result.scores["mae"][i] == pytest.approx(mae(y[origin : origin + 4], expected))
        assert result.scores["mase"][i] == pytest.approx(
            mase(y[origin : origin + 4], expected, insample=y[:origin], season_length=1)
        )
    np.testing.assert_allclose(result.residuals, result.actuals - result.forecasts)
    assert result.table()["mae"] == pytest.approx(result.scores["mae"].mean())
    assert result.model == "ses" and result.fallbacks == [None, None, None]


def test_refit_false_updates_one_fitted_model() -> None:
    rng = np.random.default_rng(1)
    y = 10 + np.sin(np.arange(120) * np.pi / 6) + rng.normal(0, 0.1, 120)
    updated = backtest(y, AutoETS(season_length=12), horizon=6, windows=4, season_length=12, refit=False)
    refitted = backtest(y, AutoETS(season_length=12), horizon=6, windows=4, season_length=12)
    np.testing.assert_allclose(updated.forecasts[0], refitted.forecasts[0])  # same first fit
    assert updated.table()["mase"] == pytest.approx(refitted.table()["mase"], rel=0.5)
    # SES's update is exact, so both modes agree at every window
    a = backtest(y, SES(alpha=0.3), horizon=6, windows=4, refit=False)
    b = backtest(y, SES(alpha=0.3), horizon=6, windows=4)
    np.testing.assert_allclose(a.forecasts, b.forecasts)


def test_fallbacks_are_recorded_per_window() -> None:
    y = np.arange(30.0)
    result = backtest(y, SeasonalNaive(season_length=24), horizon=5, windows=3, min_train=5)
    assert [r is not None for r in result.fallbacks] == [True, True, False]  # origins 15, 20 < 24 <= 25


def test_bad_arguments_name_the_problem() -> None:
    y = np.arange(20.0)
    with pytest.raises(ForecastError, match="horizon must be a positive integer, got 0"):
        backtest(y, SES(), horizon=0)
    with pytest.raises(ForecastError, match="step must be a positive integer"):
        backtest(y, SES(), horizon=2, step=-1)
    with pytest.raises(ForecastError, match="a history of 20 points has no window of horizon 19"):
        backtest(y, SES(), horizon=19)
    with pytest.raises(ForecastError, match="unknown metric"):
        backtest(y, SES(), horizon=2, metrics=("mse",))
    with pytest.raises(ForecastError, match="history must be 1-D"):
        backtest(np.zeros((3, 3)), SES(), horizon=1)


def test_rolling_score_matches_batch_metrics_in_any_chunking() -> None:
    rng = np.random.default_rng(2)
    actual = 20 + rng.normal(size=50)
    forecast = actual + rng.normal(size=50)
    live = RollingScore(season_length=3)
    for chunk in np.array_split(np.arange(50), 7):
        live.update(actual[chunk], forecast[chunk])
    scores = live.scores()
    assert live.count == 50
    assert scores["mae"] == pytest.approx(mae(actual, forecast))
    scale = np.mean(np.abs(actual[3:] - actual[:-3]))
    assert scores["mase"] == pytest.approx(mae(actual, forecast) / scale)
    assert RollingScore(scale=2.0).update(actual, forecast).scores()["mase"] == pytest.approx(
        mae(actual, forecast) / 2
    )


def test_rolling_score_window_forgets_old_pairs_and_skips_nan() -> None:
    live = RollingScore(window=3)
    live.update([1.0, 1.0, 1.0], [11.0, 1.0, 1.0]).update([1.0, np.nan], [2.0, 5.0])
    assert live.count == 3
    assert live.scores()["mae"] == pytest.approx(1 / 3)
    assert np.isnan(RollingScore().scores()["rmse"])


def test_rolling_score_bad_input() -> None:
    with pytest.raises(ForecastError, match="one forecast per actual"):
        RollingScore().update([1.0, 2.0], [1.0])
    with pytest.raises(ForecastError, match="window must be a positive integer"):
        RollingScore(window=0)
    with pytest.raises(ForecastError, match="scale must be a positive number"):
        RollingScore(scale=0.0)
