"""NLinear / DLinear: closed-form ridge fits, global training, fallbacks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.metrics import mae
from sparkhu.forecast.models import DLinear, NLinear, make_model
from sparkhu.forecast.models.linear import MIN_WINDOWS, moving_average


def noisy_seasonal(
    n: int, *, period: int = 24, level: float = 100.0, amp: float = 10.0, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return level + amp * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.03 * amp, n)


@pytest.mark.parametrize("cls", [NLinear, DLinear])
def test_learns_a_season_and_trend_exactly(cls: type) -> None:
    t = np.arange(300.0)
    y = 5 + 0.05 * t + np.tile([1.0, 4.0, 2.0, 8.0, 3.0, 0.0], 50)
    model = cls(output=6, season_length=6, ridge=1e-8).fit(y)
    assert model.lookback_ == 12 and model.fallback_reason_ is None
    expected = 5 + 0.05 * np.arange(300, 312) + np.tile([1.0, 4.0, 2.0, 8.0, 3.0, 0.0], 2)
    np.testing.assert_allclose(model.forecast(12), expected, atol=1e-5)  # 12 > output: recursive


@pytest.mark.parametrize("cls", [NLinear, DLinear])
def test_beats_naive_on_noisy_seasonal_series(cls: type) -> None:
    y = noisy_seasonal(600)
    model = cls(output=24, season_length=24).fit(y[:-24])
    assert mae(y[-24:], model.forecast(24)) < 0.1 * mae(y[-24:], np.full(24, y[-25]))
    lower, upper = model.forecast_interval(24, coverage=0.9)
    assert np.all(upper - lower > 0) and np.all(upper - lower < 3)


def test_nlinear_is_level_free() -> None:
    y = noisy_seasonal(400)
    a = NLinear(output=24, season_length=24).fit(y).forecast(24)
    b = NLinear(output=24, season_length=24).fit(y + 1000.0).forecast(24)
    np.testing.assert_allclose(b - a, 1000.0, atol=1e-6)


def test_moving_average_pads_edges_by_repetition() -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0, 10.0]])
    np.testing.assert_allclose(moving_average(x, 3), [[4 / 3, 2.0, 3.0, 17 / 3, 8.0]])
    np.testing.assert_allclose(moving_average(x, 1), x)


def test_global_model_shares_weights_across_scales() -> None:
    series = [
        noisy_seasonal(300, level=lv, amp=amp, seed=i)
        for i, (lv, amp) in enumerate([(10, 1), (500, 50), (3, 0.3)])
    ]
    model = DLinear(output=24, season_length=24).fit_global([s[:-24] for s in series])
    assert model.scaled_ and model.n_obs_ == 3 * 276
    for s in series:
        forecast = model.predict_from(s[:-24], 24)
        assert mae(s[-24:], forecast) < 0.2 * mae(s[-24:], np.full(24, s[-25]))
    unseen = noisy_seasonal(200, level=7000, amp=700, seed=9)
    assert mae(unseen[-24:], model.predict_from(unseen[:-24], 24)) < 0.2 * mae(
        unseen[-24:], np.full(24, unseen[-25])
    )
    with pytest.raises(ForecastError, match="global model has no series context"):
        model.forecast(3)
    np.testing.assert_allclose(model.update(unseen[:-24]).forecast(24), model.predict_from(unseen[:-24], 24))


def test_short_history_shrinks_the_lookback_then_falls_back_to_naive() -> None:
    y = noisy_seasonal(60)
    shrunk = NLinear(output=24, season_length=24).fit(y)  # wants 48: too few windows; 24 leaves 13
    assert shrunk.lookback_ == 24 and shrunk.fallback_reason_ is None
    tiny = NLinear(output=24, season_length=24).fit(y[:30])
    assert f"fewer than {MIN_WINDOWS} windows" in tiny.fallback_reason_
    assert tiny.forecast(2).tolist() == [y[29], y[29]]


def test_missing_values_are_interpolated() -> None:
    y = noisy_seasonal(400)
    y[[0, 1, 50, 51, 52, 399]] = np.nan
    forecast = DLinear(output=24, season_length=24).fit(y).forecast(24)
    assert np.isfinite(forecast).all()


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ForecastError, match="nlinear: output must be a positive integer, got 0"):
        NLinear(output=0)
    with pytest.raises(ForecastError, match="dlinear: kernel must be a positive integer"):
        DLinear(kernel=-1)
    with pytest.raises(ForecastError, match="ridge must be a number >= 0"):
        make_model("nlinear", ridge=-1.0)
    with pytest.raises(ForecastError, match="fit_global takes a list of series"):
        NLinear().fit_global(np.arange(100.0))
    with pytest.raises(ForecastError, match="series 1 of fit_global is empty"):
        NLinear().fit_global([np.arange(100.0), np.array([])])
    with pytest.raises(ForecastError, match="give fewer than 8 training windows"):
        NLinear(output=20).fit_global([np.arange(25.0), np.arange(20.0)])
    with pytest.raises(ForecastError, match="context has no observed value"):
        NLinear(output=2).fit(np.arange(50.0)).predict_from(np.array([np.nan]), 2)


@pytest.mark.parametrize("cls", [NLinear, DLinear])
def test_update_learns_from_the_new_windows_and_equals_a_refit(cls: type) -> None:
    sm = pytest.importorskip("statsmodels.api")
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().to_numpy("float64")[:700]
    model = cls(output=12, season_length=12).fit(co2[:500])
    before = model.weights_.copy()
    for start in range(500, 700, 5):
        model.update(co2[start : start + 5])
    refit = cls(output=12, season_length=12).fit(co2)
    assert model.n_obs_ == 700 and model.history_.size == model.lookback_ + 12  # bounded context
    assert not np.allclose(model.weights_, before)  # it learned
    np.testing.assert_allclose(model.weights_, refit.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.forecast(24), refit.forecast(24), rtol=1e-10)
    np.testing.assert_allclose(model.sigma_, refit.sigma_, rtol=1e-8)
    model.update(np.array([np.nan, co2[-1]]))  # a missing value: keeps forecasting, stops learning
    assert model.stats_ is None and np.isfinite(model.forecast(3)).all()
