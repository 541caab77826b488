"""Champion selection: the choice and its table, failing candidates, ensembles, the portfolio."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models import SES, AutoETS, DLinear, NLinear, SeasonalNaive
from sparkhu.forecast.selection import PORTFOLIO, MeanEnsemble, default_portfolio, labels_for, select_champion


class Exploding(Forecaster):
    """A model that fails on fit, as a third-party model sometimes does."""

    name = "exploding"

    def _reset(self) -> None:
        pass

    def _fit(self, y: np.ndarray) -> None:
        raise np.linalg.LinAlgError("singular matrix")

    def _update(self, y_new: np.ndarray) -> None:
        pass

    def _forecast(self, horizon: int) -> np.ndarray:
        return np.zeros(horizon)


def seasonal(n: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 20 + 5 * np.sin(2 * np.pi * np.arange(n) / 12) + rng.normal(0, 0.2, n)


def test_champion_has_the_lowest_backtest_score_and_a_full_table() -> None:
    y = seasonal()
    sel = select_champion(y, [SES(), SeasonalNaive(season_length=12), Exploding()], horizon=12, windows=3,
                          season_length=12)  # fmt: skip
    assert sel.champion == "seasonal_naive" and sel.metric == "mase"
    assert sel.scores["seasonal_naive"]["mase"] < sel.scores["ses"]["mase"]
    assert sel.errors == {"exploding": "LinAlgError: singular matrix"}
    assert "lowest mean back-test mase" in sel.reason and "runner-up ses" in sel.reason
    assert "1 candidate(s) failed" in sel.reason
    rows = sel.table()
    assert [r["model"] for r in rows] == ["seasonal_naive", "ses", "exploding"]
    assert rows[0]["champion"] and rows[0]["windows"] == 3 and rows[2]["error"].startswith("LinAlgError")
    assert set(rows[0]) >= {"mae", "rmse", "mape", "smape", "mase", "seconds", "fallback"}
    fresh = sel.champion_model()
    assert isinstance(fresh, SeasonalNaive) and not fresh.is_fitted


def test_other_metric_and_ties_keep_input_order() -> None:
    y = seasonal()
    sel = select_champion(y, [SES(alpha=0.5), SES(alpha=0.5)], horizon=6, metric="rmse")
    assert sel.champion == "ses" and set(sel.scores) == {"ses", "ses#2"}


def test_ensemble_of_the_top_k_is_scored_from_existing_forecasts() -> None:
    y = seasonal(150) + np.linspace(0, 10, 150)
    candidates = [
        SeasonalNaive(season_length=12),
        AutoETS(season_length=12),
        NLinear(output=12, season_length=12),
    ]
    sel = select_champion(y, candidates, horizon=12, windows=4, season_length=12, ensemble_top_k=2)
    ensemble = [label for label in sel.scores if label.startswith("ensemble(")]
    assert len(ensemble) == 1
    members = ensemble[0][len("ensemble(") : -1].split("+")
    expected = np.mean([sel.results[m].forecasts for m in members], axis=0)
    np.testing.assert_allclose(sel.results[ensemble[0]].forecasts, expected)
    model = sel.candidates[ensemble[0]]
    assert isinstance(model, MeanEnsemble) and [m.name for m in model.members] == members
    assert np.isfinite(model.clone().fit(y).forecast(12)).all()


def test_mean_ensemble_forecasts_the_mean_of_members() -> None:
    y = seasonal()
    ens = MeanEnsemble((SES(alpha=0.3), SeasonalNaive(season_length=12))).fit(y)
    expected = (SES(alpha=0.3).fit(y).forecast(5) + SeasonalNaive(season_length=12).fit(y).forecast(5)) / 2
    np.testing.assert_allclose(ens.forecast(5), expected)
    assert ens.update(y[:3]).n_obs_ == y.size + 3
    with pytest.raises(ForecastError, match="members must be a non-empty sequence"):
        MeanEnsemble(())


def test_default_portfolio_follows_the_seasons() -> None:
    one = default_portfolio(24, horizon=12)
    assert [m.name for m in one] == [n for n in PORTFOLIO if n != "mstl"]
    two = default_portfolio([24, 168], horizon=12)
    assert "mstl" in [m.name for m in two]
    linear = [m for m in two if isinstance(m, NLinear | DLinear)]
    assert all(m.output == 12 and m.season_length == 24 for m in linear)
    assert [m.name for m in default_portfolio(7, include=["ses", "auto_ets"])] == ["ses", "auto_ets"]
    assert labels_for([SES(), SES(), AutoETS()]) == ["ses", "ses#2", "auto_ets"]


def test_bad_input_names_the_problem() -> None:
    y = seasonal()
    with pytest.raises(ForecastError, match="unknown metric 'r2'"):
        select_champion(y, [SES()], horizon=3, metric="r2")
    with pytest.raises(ForecastError, match="no candidates"):
        select_champion(y, [], horizon=3)
    with pytest.raises(ForecastError, match="has no window of horizon 200"):
        select_champion(y, [SES()], horizon=200)
    with pytest.raises(ForecastError, match="every candidate failed"):
        select_champion(y, [Exploding()], horizon=3)
    with pytest.raises(ForecastError, match="unknown model\\(s\\) \\['prophet'\\]"):
        default_portfolio(12, include=["prophet"])
    with pytest.raises(ForecastError, match="season lengths must be positive integers"):
        default_portfolio([12, 0])
