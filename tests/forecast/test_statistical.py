"""statsforecast wrappers: forecasts that beat naive, fallbacks with reasons, update, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.metrics import mae
from sparkhu.forecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, HoltWinters, make_model
from sparkhu.forecast.models.statistical import STATISTICAL_MODELS, clean_history, warm_up

M = 12


def seasonal_series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / M) + rng.normal(0, 0.5, n)


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    warm_up()  # numba compiles once per process; later fits are fast


@pytest.mark.parametrize("cls", STATISTICAL_MODELS)
def test_model_forecasts_a_seasonal_trend_far_better_than_naive(cls: type) -> None:
    y = seasonal_series(120)
    train, test = y[:-M], y[-M:]
    model = cls(season_length=M).fit(train)
    assert model.fallback_reason_ is None and model.method_ == "seasonal"
    forecast = model.forecast(M)
    naive_error = mae(test, np.full(M, train[-1]))
    assert mae(test, forecast) < 0.3 * naive_error
    lower, upper = model.forecast_interval(M, coverage=0.9)
    assert np.all(lower < forecast) and np.all(forecast < upper)
    assert model.clone().params == model.params and not model.clone().is_fitted


@pytest.mark.parametrize("cls", STATISTICAL_MODELS)
def test_update_moves_the_forecast_origin_without_refitting(cls: type) -> None:
    y = seasonal_series(150, seed=1)
    model = cls(season_length=M).fit(y[:120])
    before = model.forecast(M)
    model.update(y[120:138])
    assert model.n_obs_ == 138
    after = model.forecast(M)
    refitted = cls(season_length=M).fit(y[:138]).forecast(M)
    assert not np.allclose(before, after)
    # same parameters, newer data: close to a full refit, and tracking the new phase
    assert mae(after, refitted) < 1.5
    assert mae(y[138:150], after) < 2.0


def test_constant_mostly_missing_and_tiny_histories_fall_back_to_naive() -> None:
    constant = AutoETS(season_length=M).fit(np.full(50, 7.0))
    assert constant.method_ == "naive" and "constant history" in constant.fallback_reason_
    assert constant.forecast(3).tolist() == [7.0, 7.0, 7.0]

    y = seasonal_series(60)
    y[5:45] = np.nan
    missing = AutoARIMA(season_length=M).fit(y)
    assert "67% of the history is missing (more than 50%)" in missing.fallback_reason_
    assert missing.forecast(2).tolist() == [y[-1], y[-1]]

    tiny = AutoTheta().fit(np.array([1.0, 2.0, 4.0]))
    assert "only 3 observed points" in tiny.fallback_reason_
    lower, upper = tiny.forecast_interval(2)
    assert np.isfinite(lower).all() and np.all(upper > lower)


def test_history_shorter_than_two_seasons_is_fitted_without_seasonality() -> None:
    model = AutoETS(season_length=24).fit(seasonal_series(30))
    assert model.method_ == "non-seasonal"
    assert "shorter than two seasons (season_length=24)" in model.fallback_reason_
    assert np.isfinite(model.forecast(5)).all()


def test_library_failure_becomes_a_fallback_with_the_reason() -> None:
    negative = np.sin(np.arange(60) * np.pi / 6) * 5 - 1
    model = HoltWinters(season_length=M, error_type="M").fit(negative)
    assert model.method_ == "naive"
    assert "HoltWinters failed: ValueError: Inappropriate model" in model.fallback_reason_
    assert model.forecast(1).tolist() == [negative[-1]]


def test_long_seasons_use_stl_deseasonalisation() -> None:
    t = np.arange(400)
    y = 10 + 3 * np.sin(2 * np.pi * t / 48) + 0.01 * t
    ets, arima = AutoETS(season_length=48).fit(y), AutoARIMA(season_length=48).fit(y)
    assert ets.method_ == arima.method_ == "stl"
    expected = 10 + 3 * np.sin(2 * np.pi * np.arange(400, 448) / 48) + 0.01 * np.arange(400, 448)
    assert mae(expected, ets.forecast(48)) < 0.1
    assert mae(expected, arima.forecast(48)) < 0.1


def test_mstl_uses_extra_seasons_that_fit_in_the_history() -> None:
    t = np.arange(24 * 21)
    y = 100 + 10 * np.sin(2 * np.pi * t / 24) + 5 * np.sin(2 * np.pi * t / 168)
    two = MSTL(season_length=24, extra_seasons=(168,)).fit(y[:-24])
    one = MSTL(season_length=24).fit(y[:-24])
    assert mae(y[-24:], two.forecast(24)) < 0.5 * mae(y[-24:], one.forecast(24))
    too_long = MSTL(season_length=24, extra_seasons=(1000,)).fit(y)
    assert too_long.fallback_reason_ is None and np.isfinite(too_long.forecast(3)).all()


def test_missing_values_inside_are_interpolated() -> None:
    assert clean_history(np.array([np.nan, 1.0, np.nan, 3.0, np.nan])).tolist() == [1.0, 2.0, 3.0, 3.0]
    y = seasonal_series(100)
    y[[10, 40, 41, 99]] = np.nan
    model = AutoTheta(season_length=M).fit(y)
    assert model.fallback_reason_ is None and np.isfinite(model.forecast(M)).all()


def test_registry_builds_them_and_rejects_bad_hyperparameters() -> None:
    assert isinstance(make_model("auto_arima", season_length=4), AutoARIMA)
    with pytest.raises(ForecastError, match="auto_ets: season_length must be a positive integer, got 0"):
        make_model("auto_ets", season_length=0)
    with pytest.raises(ForecastError, match="holt_winters: error_type must be 'A' or 'M'"):
        HoltWinters(error_type="X")
    with pytest.raises(ForecastError, match="auto_theta: decomposition_type"):
        AutoTheta(decomposition_type="both")
    with pytest.raises(ForecastError, match="mstl: extra_seasons must be a positive integer"):
        MSTL(season_length=24, extra_seasons=(0,))
    with pytest.raises(ForecastError, match="cannot fit on 3 values that are all NaN"):
        AutoETS().fit(np.full(3, np.nan))
    with pytest.raises(ForecastError, match="forecast before fit"):
        AutoETS().forecast(3)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("auto_ets", {"season_length": 12}),
        ("auto_ets", {}),
        ("holt_winters", {"season_length": 12}),
        ("holt_winters", {"season_length": 12, "error_type": "M"}),
    ],
)
def test_ets_updates_run_the_recursion_on_new_points_and_equal_forward(name: str, params: dict) -> None:
    sm = pytest.importorskip("statsmodels.api")
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().to_numpy("float64")[:330]
    model = make_model(name, **params).fit(co2[:300])
    for start in range(300, 330, 3):
        model.update(co2[start : start + 3])
        assert model.ets_state_ is not None and not model._stale  # no pass over the history
        assert model.ets_state_["n"] == start + 3
        forward = model.sf_model_.forward(y=model.history_, h=20, level=[80])
        np.testing.assert_allclose(model.forecast(20), forward["mean"], rtol=1e-9)
        if params.get("error_type") != "M":  # multiplicative intervals are simulated
            lower, upper = model.forecast_interval(20, 0.8)
            np.testing.assert_allclose(lower, forward["lo-80"], rtol=1e-9)
            np.testing.assert_allclose(upper, forward["hi-80"], rtol=1e-9)
    model.update(np.array([np.nan, co2[-1]]))  # a missing value: the history interpolates it
    assert model.ets_state_ is None and model._stale
    assert np.isfinite(model.forecast(3)).all()
