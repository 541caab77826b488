"""Tuning: TPE over a space beats the default on a toy problem, pruning, parallel workers, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.models.lstm import LSTMForecaster
from sparkhu.forecast.tune import LSTM_SPACE, Choice, FloatRange, IntRange, tune

FIXED = {"input_size": 24, "horizon": 6, "epochs": 8, "patience": 0, "threads": 1}


def toy(n: int = 300) -> np.ndarray:
    t = np.arange(n, dtype="float64")
    return np.sin(2 * np.pi * t / 24) + np.random.default_rng(0).normal(0, 0.05, n)


def test_tuning_beats_the_default_configuration():
    y = toy()
    result = tune(y, space=LSTM_SPACE, fixed=FIXED, n_trials=7, seed=0)
    default = LSTMForecaster(**FIXED).fit(y)  # hidden 60, 1 layer, lr 0.01
    assert result.best_value < default.best_val_loss_
    assert set(result.best_params) >= {"hidden_size", "num_layers", "lr", "epochs"}
    assert result.best_params["hidden_size"] in (2, 4, 8, 16, 32, 64)
    table = result.trials
    assert len(table) == 7 and list(table.columns[:3]) == ["number", "state", "value"]
    assert result.best_value == table.loc[table.state == "COMPLETE", "value"].min()
    # the best parameters reproduce the best value (one worker is deterministic)
    again = LSTMForecaster(**result.best_params).fit(y)
    assert again.best_val_loss_ == pytest.approx(result.best_value, rel=1e-6)


def test_same_seed_same_trials():
    space = {"alpha": FloatRange(0.01, 0.99)}
    a = tune(toy(100), model="ses", space=space, n_trials=5, seed=3, holdout=10)
    b = tune(toy(100), model="ses", space=space, n_trials=5, seed=3, holdout=10)
    assert a.trials["alpha"].tolist() == b.trials["alpha"].tolist()


def test_unpromising_trials_are_pruned():
    space = {"lr": FloatRange(1e-5, 1e-1, log=True), "hidden_size": Choice((2, 32))}
    fixed = FIXED | {"epochs": 6}
    result = tune(toy(), space=space, fixed=fixed, n_trials=10, seed=1)
    states = result.trials["state"].value_counts().to_dict()
    assert states.get("PRUNED", 0) >= 1, states


def test_parallel_workers_share_an_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"hidden_size": Choice((4, 8)), "num_layers": IntRange(1, 2)}
    fixed = FIXED | {"epochs": 2}
    result = tune(toy(200), space=space, fixed=fixed, n_trials=4, n_workers=2, storage=url, study_name="s")
    assert len(result.trials) == 4 and (tmp_path / "study.db").exists()
    resumed = tune(toy(200), space=space, fixed=fixed, n_trials=1, storage=url, study_name="s")
    assert len(resumed.trials) == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"space": {}}, "search space is empty"),
        ({"space": {"lr": FloatRange(0.0, 1.0, log=True)}}, "bad search dimension lr"),
        ({"space": {"lr": (0.1, 0.2)}}, "bad search dimension lr"),
        ({"model": "prophet"}, "unknown model 'prophet'"),
        ({"fixed": {"hidden": 3}}, "bad hyperparameters"),
        ({"n_trials": 0}, "n_trials and n_workers must be >= 1"),
        ({"storage": "nosuchdb://x"}, "cannot open the study"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ForecastError, match=match):
        tune(toy(), **({"fixed": FIXED} | kwargs))


def test_every_trial_failing_is_an_error():
    with pytest.raises(ForecastError, match="none of the 2 trials of lstm completed"):
        tune(toy(20), fixed=FIXED, n_trials=2)
