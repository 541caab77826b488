"""The LSTM forecaster: learning a known signal, early stopping, determinism, persistence, online updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparkhu.errors import ForecastError
from sparkhu.forecast.models import make_model
from sparkhu.forecast.models.lstm import LSTMForecaster, mse
from sparkhu.forecast.windows import training_windows

SMALL = {"input_size": 24, "horizon": 6, "hidden_size": 16, "epochs": 15, "threads": 1}


def signal(n: int, start: int = 0, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Sine (period 24, amplitude 1) + trend + Gaussian noise."""
    t = np.arange(start, start + n, dtype="float64")
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * t / 24) + 0.002 * t + (rng.normal(0, noise, n) if noise else 0.0)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_learns_a_known_signal():
    # Stated error: RMSE < 0.1 x amplitude on the 12 hold-out steps (seeds 0-3 give 0.03-0.12).
    y = signal(720)
    model = LSTMForecaster(
        input_size=48, horizon=12, hidden_size=32, batch_size=32, epochs=80, patience=15, seed=3, threads=1
    ).fit(y)
    error = rmse(model.forecast(12), signal(12, start=720, noise=0))
    assert error < 0.1, error
    naive = rmse(np.full(12, y[-1]), signal(12, start=720, noise=0))
    assert error < naive / 5


def test_early_stopping_stops_and_restores_best_weights():
    model = LSTMForecaster(**SMALL | {"epochs": 300, "patience": 3, "lr": 0.05}).fit(signal(300))
    assert model.stopped_early_
    assert len(model.val_losses_) == model.best_epoch_ + 1 + 3 < 300
    assert model.best_val_loss_ == min(model.val_losses_)
    # val_rmse_ is measured after restoring: it matches the best epoch, not the last one
    assert float(np.mean(model.val_rmse_**2)) == pytest.approx(model.best_val_loss_, rel=1e-4)
    assert model.val_losses_[-1] > model.best_val_loss_


def test_same_seed_same_model_and_no_global_state_touched():
    torch.manual_seed(123)
    rng_before, threads_before = torch.random.get_rng_state(), torch.get_num_threads()
    a = LSTMForecaster(**SMALL, seed=5).fit(signal(200))
    b = LSTMForecaster(**SMALL, seed=5).fit(signal(200))
    c = LSTMForecaster(**SMALL, seed=6).fit(signal(200))
    np.testing.assert_array_equal(a.forecast(6), b.forecast(6))
    assert not np.array_equal(a.forecast(6), c.forecast(6))
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads_before


def test_two_shards_train_the_same_algorithm():
    one = LSTMForecaster(**SMALL | {"threads": 1}).fit(signal(200))
    two = LSTMForecaster(**SMALL | {"threads": 2}).fit(signal(200))
    # the shard gradients sum to the batch gradient: the curves agree up to float rounding
    np.testing.assert_allclose(one.train_losses_[:3], two.train_losses_[:3], rtol=1e-3)


def test_loss_shapes_must_match_exactly():
    # The original compared pred [B, N] with target [B, N, 1], which broadcasts to [B, N, N].
    pred, target = torch.zeros(4, 3), torch.ones(4, 3, 1)
    with pytest.raises(
        ForecastError, match=r"prediction shape \(4, 3\) differs from target shape \(4, 3, 1\)"
    ):
        mse(pred, target)
    model = LSTMForecaster(**SMALL | {"epochs": 1}).fit(signal(100))
    ws = training_windows([signal(100)], 24, 6, 0.2, "minmax", "t")
    assert model.net_ is not None
    assert model.net_(torch.from_numpy(ws.x_train)).shape == ws.y_train.shape


def test_model_sees_windows_in_time_order():
    # A slow rise and a sudden drop (sawtooth, period 20): windows built in reverse time order
    # would teach a slow fall and a sudden rise, the mirror image of the truth.
    y = (np.arange(400) % 20) / 20.0
    model = LSTMForecaster(**SMALL | {"epochs": 40, "lr": 0.02}).fit(y)
    truth = (np.arange(400, 406) % 20) / 20.0
    mirror = 1.0 - truth
    assert rmse(model.forecast(6), truth) < 0.25 < 0.5 < rmse(model.forecast(6), mirror)


def test_save_load_round_trip(tmp_path):
    model = LSTMForecaster(**SMALL).fit(signal(200))
    loaded = LSTMForecaster.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(loaded.forecast(10), model.forecast(10))
    assert loaded.params == model.params and loaded.best_epoch_ == model.best_epoch_
    model.save(tmp_path / "m.pt")
    again = LSTMForecaster.load(tmp_path / "m.pt")
    new = signal(10, start=200)
    # the optimizer state and the newest values travel too: updates agree
    np.testing.assert_array_equal(again.update(new).forecast(6), model.update(new).forecast(6))
    lo, hi = again.forecast_interval(6)
    assert np.all(lo < hi)


def test_update_follows_a_shifted_signal():
    y = signal(400)
    base = LSTMForecaster(**SMALL | {"epochs": 30, "update_steps": 20}).fit(y)
    shifted = signal(48, start=400) + 0.4  # the level jumps
    truth = signal(6, start=448, noise=0) + 0.4
    frozen = LSTMForecaster.from_bytes(base.to_bytes())
    frozen.update_steps = 0
    before = rmse(frozen.update(shifted).forecast(6), truth)
    after = rmse(base.update(shifted).forecast(6), truth)
    assert base.n_obs_ == 448
    assert after <= before, (after, before)


def test_long_horizons_are_recursive():
    model = LSTMForecaster(**SMALL).fit(signal(200))
    direct, long = model.forecast(6), model.forecast(15)
    np.testing.assert_array_equal(long[:6], direct)
    assert long.shape == (15,) and np.isfinite(long).all()
    lo, hi = model.forecast_interval(15)
    assert np.all(hi[6:12] - lo[6:12] > hi[:6] - lo[:6])


def test_global_training_over_series_of_different_scales():
    a, b = signal(300, seed=1), 500 + 100 * signal(300, seed=2)
    model = LSTMForecaster(**SMALL | {"epochs": 40}).fit_global([a, b])
    with pytest.raises(ForecastError, match="bind"):
        model.forecast(3)
    fa, fb = model.bind(a[:-6]), model.bind(b[:-6])
    for bound, series in ((fa, a), (fb, b)):
        naive = rmse(np.full(6, series[-7]), series[-6:])
        assert rmse(bound.forecast(6), series[-6:]) < naive / 2
    assert fb.scaler_ is not None and fb.scaler_.low > 300


def test_registry_builds_it_lazily():
    model = make_model("lstm", **SMALL)
    assert isinstance(model, LSTMForecaster) and model.clone().params == model.params


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.arange(20.0), "20 values are too few for input_size=24, horizon=6"),
        (np.r_[signal(100), np.nan, signal(100)], "1 NaN/infinite values .* index 100"),
        (np.full(200, 3.0), "constant"),
    ],
)
def test_bad_histories(y, match):
    with pytest.raises(ForecastError, match=match):
        LSTMForecaster(**SMALL).fit(y)


def test_bad_hyperparameters_and_misuse():
    with pytest.raises(ForecastError, match="hidden_size must be an integer >= 1"):
        LSTMForecaster(hidden_size=0)
    with pytest.raises(ForecastError, match="dropout must be in"):
        LSTMForecaster(dropout=1.5)
    with pytest.raises(ForecastError, match="scaler must be"):
        LSTMForecaster(scaler="robust")
    with pytest.raises(ForecastError, match="bad hyperparameters"):
        make_model("lstm", hidden=3)
    with pytest.raises(ForecastError, match="forecast before fit"):
        LSTMForecaster().forecast(3)
    with pytest.raises(ForecastError, match="nothing to save"):
        LSTMForecaster().to_bytes()
    with pytest.raises(ForecastError, match="cannot load the saved model"):
        LSTMForecaster.from_bytes(b"not a model")
    model = LSTMForecaster(**SMALL | {"epochs": 1}).fit(signal(100))
    with pytest.raises(ForecastError, match="NaN/infinite"):
        model.update(np.array([1.0, np.nan]))


def test_dropout_and_layers_train():
    model = LSTMForecaster(**SMALL | {"num_layers": 2, "dropout": 0.2, "epochs": 3}).fit(signal(150))
    assert np.isfinite(model.forecast(6)).all() and len(model.train_losses_) == 3
