"""The model bank: vectorised updates equal each model's own update, on real packaged series."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.forecast.bank import ModelBank, padded
from sparkhu.forecast.models import make_model

CASES = [
    ("ses", {"alpha": 0.3}),
    ("ses", {}),
    ("seasonal_naive", {"season_length": 12}),
    ("seasonal_naive", {"season_length": 1}),
    ("auto_theta", {"season_length": 12}),  # no vectorised family: the per-object path
]


@pytest.fixture(scope="module")
def series() -> list[np.ndarray]:
    """Twelve real series: the CO2 record (statsmodels) cut into stretches at different levels."""
    sm = pytest.importorskip("statsmodels.api")
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().to_numpy("float64")
    return [co2[i * 150 : i * 150 + 140] * (1 + i / 10) for i in range(12)]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_bank_updates_equal_the_models_own(series: list[np.ndarray], name: str, params: dict) -> None:
    sids = [f"co2/mauna_loa/s{i}" for i in range(len(series))]
    bank, slow = ModelBank(), {}
    for i, (sid, y) in enumerate(zip(sids, series, strict=True)):
        start = 30 + 5 * i  # each series fitted on a different length
        slow[sid] = make_model(name, **params).fit(y[:start])
        bank[sid] = make_model(name, **params).fit(y[:start])
    position = {sid: 30 + 5 * i for i, sid in enumerate(sids)}
    for tick in range(6):
        chunk = {
            sid: series[i][position[sid] : position[sid] + 1 + (i + tick) % 3] for i, sid in enumerate(sids)
        }
        if tick == 2:
            chunk[sids[0]] = np.array([np.nan, *chunk[sids[0]][1:]])  # a missing value
        for sid, values in chunk.items():
            position[sid] += values.size
            slow[sid].update(values)
        bank.update_many(sids, list(chunk.values()))
        out = bank.forecast_many(sids, 20, 0.9)
        assert out.ok.all()
        for row, sid in enumerate(sids):
            lower, upper = slow[sid].forecast_interval(20, 0.9)
            np.testing.assert_allclose(out.mean[row], slow[sid].forecast(20), rtol=1e-12)
            np.testing.assert_allclose(out.lower[row], lower, rtol=1e-12)
            np.testing.assert_allclose(out.upper[row], upper, rtol=1e-12)
    for sid in sids:
        assert bank[sid].n_obs_ == slow[sid].n_obs_
        np.testing.assert_allclose(bank[sid].forecast(3), slow[sid].forecast(3), rtol=1e-12)


def test_the_bank_hands_out_the_same_object_brought_up_to_date() -> None:
    bank = ModelBank()
    model = make_model("ses", alpha=0.5).fit(np.array([1.0, 3.0]))
    bank["a/b/c"] = model
    bank.update_many(["a/b/c"], [np.array([4.0, 6.0])])
    assert bank["a/b/c"] is model and model.level_ == 4.5 and model.n_obs_ == 4
    model.update(np.array([8.0]))  # changed outside the bank, then put back
    bank["a/b/c"] = model
    assert bank.forecast_many(["a/b/c"], 1).mean.tolist() == [[6.25]]
    bank["a/b/c"] = make_model("seasonal_naive", season_length=2).fit(np.array([1.0, 2.0]))
    assert len(bank) == 1 and bank.forecast_many(["a/b/c"], 3).mean.tolist() == [[1.0, 2.0, 1.0]]
    del bank["a/b/c"]
    assert "a/b/c" not in bank and len(bank) == 0


def test_a_model_that_cannot_forecast_is_reported_not_raised() -> None:
    bank = ModelBank()
    bank["a/b/c"] = make_model("auto_ets")  # unfitted: kept as an object, forecasting fails
    bank["a/b/d"] = make_model("ses", alpha=0.5).fit(np.array([2.0]))
    out = bank.forecast_many(["a/b/c", "a/b/d"], 2)
    assert (
        out.ok.tolist() == [False, True]
        and np.isnan(out.mean[0]).all()
        and out.mean[1].tolist() == [2.0, 2.0]
    )
    assert not bank.fitted("a/b/c") and bank.fitted("a/b/d") and not bank.fitted("a/b/e")


def test_padded_keeps_ragged_updates_apart() -> None:
    matrix, counts = padded([np.array([1.0, 2.0, 3.0]), np.array([4.0])])
    assert (
        counts.tolist() == [3, 1] and np.isnan(matrix[1, 1:]).all() and matrix[0].tolist() == [1.0, 2.0, 3.0]
    )
