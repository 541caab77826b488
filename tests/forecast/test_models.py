"""Baseline forecasters: the math on hand-made series, the shared contract, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models import MODELS, SES, SeasonalNaive, make_model
from sparkhu.forecast.models.ses import one_step_sse, smooth_levels

# ---- seasonal naive -------------------------------------------------------------------


def test_seasonal_naive_repeats_the_last_season():
    y = np.array([1.0, 2, 3, 4, 10, 20, 30, 40])
    model = SeasonalNaive(season_length=4).fit(y)
    assert model.fallback_reason_ is None
    assert model.forecast(10).tolist() == [10, 20, 30, 40, 10, 20, 30, 40, 10, 20]


def test_seasonal_naive_phase_follows_history_length():
    # 6 points, season 4: the next point has the phase of y[2]
    model = SeasonalNaive(season_length=4).fit(np.arange(6.0))
    assert model.forecast(4).tolist() == [2.0, 3.0, 4.0, 5.0]


def test_seasonal_naive_falls_back_to_naive_with_reason():
    model = SeasonalNaive(season_length=24).fit(np.array([5.0, 6.0, 7.0]))
    assert model.forecast(3).tolist() == [7.0, 7.0, 7.0]
    assert "shorter than season_length=24" in model.fallback_reason_
    model.update(np.arange(21.0))  # now 24 points: a whole season
    assert model.fallback_reason_ is None
    assert model.forecast(2).tolist() == [5.0, 6.0]


def test_seasonal_naive_fills_missing_phase_from_previous_season():
    y = np.array([1.0, 2.0, 3.0, 11.0, np.nan, 13.0])
    assert SeasonalNaive(season_length=3).fit(y).forecast(3).tolist() == [11.0, 2.0, 13.0]


def test_seasonal_naive_update_equals_fit_on_concatenation():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=30), rng.normal(size=17)
    updated = SeasonalNaive(season_length=7).fit(a).update(b)
    fitted = SeasonalNaive(season_length=7).fit(np.concatenate([a, b]))
    np.testing.assert_array_equal(updated.forecast(20), fitted.forecast(20))
    assert updated.n_obs_ == 47


def test_seasonal_naive_interval_widens_by_season():
    y = np.array([0.0, 10.0, 1.0, 11.0, 2.0, 12.0])  # seasonal differences all 1.0
    lower, upper = SeasonalNaive(season_length=2).fit(y).forecast_interval(4, coverage=0.95)
    half = (upper - lower) / 2
    np.testing.assert_allclose(half, 1.959964 * np.sqrt([1, 1, 2, 2]), rtol=1e-5)


# ---- SES ------------------------------------------------------------------------------


def test_ses_fixed_alpha_matches_hand_computation():
    y = np.array([10.0, 12.0, 11.0, 15.0])
    # l0=10; l1=.3*12+.7*10=10.6; l2=.3*11+.7*10.6=10.72; l3=.3*15+.7*10.72=12.004
    model = SES(alpha=0.3).fit(y)
    assert model.level_ == pytest.approx(12.004)
    assert model.forecast(3) == pytest.approx([12.004] * 3)
    # one-step errors: 12-10, 11-10.6, 15-10.72
    assert model.sse_ == pytest.approx(2.0**2 + 0.4**2 + 4.28**2)


def test_ses_update_equals_fit_on_concatenation():
    rng = np.random.default_rng(7)
    a, b = rng.normal(100, 5, size=150), rng.normal(100, 5, size=77)
    updated = SES(alpha=0.42).fit(a).update(b[:10]).update(b[10:])
    fitted = SES(alpha=0.42).fit(np.concatenate([a, b]))
    assert updated.level_ == pytest.approx(fitted.level_, rel=1e-12)
    assert updated.sse_ == pytest.approx(fitted.sse_, rel=1e-12)
    assert updated.n_obs_ == fitted.n_obs_ == 227


def test_ses_blocked_filter_matches_plain_recursion():
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)  # several blocks of 64
    alphas = np.array([0.05, 0.5, 1.0])
    expected = np.empty((3, 200))
    for i, a in enumerate(alphas):
        level = 3.0
        for t, v in enumerate(y):
            level = a * v + (1 - a) * level
            expected[i, t] = level
    np.testing.assert_allclose(smooth_levels(y, alphas, np.full(3, 3.0)), expected, rtol=1e-10)


def test_ses_optimised_alpha_minimises_one_step_error():
    rng = np.random.default_rng(11)
    level = np.cumsum(rng.normal(0, 1, 400))
    y = level + rng.normal(0, 1, 400)  # local level model: best alpha well inside (0, 1)
    model = SES().fit(y)
    assert 0.05 < model.alpha_ < 0.95
    grid = np.linspace(0.01, 0.99, 981)
    best_on_grid = one_step_sse(y, grid).min()
    assert one_step_sse(y, np.array([model.alpha_]))[0] <= best_on_grid * (1 + 1e-6)


def test_ses_skips_missing_values():
    with_gap = SES(alpha=0.5).fit(np.array([1.0, np.nan, 3.0])).update(np.array([np.nan, 5.0]))
    without = SES(alpha=0.5).fit(np.array([1.0, 3.0, 5.0]))
    assert with_gap.level_ == pytest.approx(without.level_)


def test_ses_interval_grows_with_horizon():
    model = SES(alpha=0.5).fit(np.array([1.0, 2.0, 1.0, 2.0, 1.0]))
    lower, upper = model.forecast_interval(3)
    width = upper - lower
    assert np.all(np.diff(width) > 0)
    np.testing.assert_allclose((lower + upper) / 2, model.forecast(3))


# ---- the contract, for every registered model -------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_params_clone_reset(name):
    model = make_model(name)
    assert isinstance(model, Forecaster) and model.name == name
    params = model.params
    model.fit(np.arange(1.0, 30.0))
    twin = model.clone()
    assert twin.params == params and not twin.is_fitted and type(twin) is type(model)
    assert model.is_fitted
    model.reset()
    assert not model.is_fitted
    with pytest.raises(ForecastError, match="forecast before fit"):
        model.forecast(1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_update_before_fit_fits(name):
    model = make_model(name).update(np.array([1.0, 2.0, 3.0]))
    assert model.is_fitted and model.forecast(2).shape == (2,)
    assert model.update(np.array([])).n_obs_ == 3


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([]), "empty history"),
        (np.array([np.nan, np.nan]), "all NaN"),
        (np.array([[1.0, 2.0]]), "must be 1-D"),
        (["a", "b"], "not numeric"),
    ],
)
def test_contract_rejects_bad_histories(name, y, message):
    with pytest.raises(ForecastError, match=message):
        make_model(name).fit(y)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("horizon", [0, -3, 2.5, True])
def test_contract_rejects_bad_horizon(name, horizon):
    model = make_model(name).fit(np.arange(5.0))
    with pytest.raises(ForecastError, match="horizon must be a positive integer"):
        model.forecast(horizon)


def test_fit_rejects_mismatched_timestamps():
    with pytest.raises(ForecastError, match="ts has 2 timestamps for 3 values"):
        SES().fit(np.array([1.0, 2.0, 3.0]), ts=np.array([1, 2]))


def test_registry_errors_name_the_problem():
    with pytest.raises(ForecastError, match=r"unknown model 'prophet'; known models: .*seasonal_naive, ses"):
        make_model("prophet")
    with pytest.raises(ForecastError, match="bad hyperparameters"):
        make_model("ses", season_length=3)
    with pytest.raises(ForecastError, match=r"alpha must be in \(0, 1\]"):
        make_model("ses", alpha=1.5)
    with pytest.raises(ForecastError, match="season_length must be a positive integer"):
        make_model("seasonal_naive", season_length=0)
    with pytest.raises(ForecastError, match="coverage must be in"):
        SES(alpha=0.5).fit(np.arange(3.0)).forecast_interval(2, coverage=1.5)
