"""Data-parallel LSTM training (DDP over gloo: TorchDistributor, torch.multiprocessing); tuning on Spark."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from sparkhu.engine.spark import SparkEngine
from sparkhu.errors import ForecastError
from sparkhu.forecast.distributed import (
    DDPRun,
    _distributor,
    rank_batches,
    run_ddp,
    spark_tasks,
    train_lstm_distributed,
)
from sparkhu.forecast.models.lstm import LSTMForecaster
from sparkhu.forecast.tune import FloatRange, IntRange, tune

# the single-process test's known signal and configuration (tests/forecast/test_lstm.py)
KNOWN = {"input_size": 48, "horizon": 12, "hidden_size": 32, "batch_size": 32, "epochs": 80, "patience": 15,
         "seed": 3}  # fmt: skip
SMALL = {"input_size": 24, "horizon": 6, "hidden_size": 8, "epochs": 3, "patience": 0}
# the same settings as tests/engine/conftest.py, so that one session serves both folders
TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
}


def signal(n: int, start: int = 0, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Sine (period 24, amplitude 1) + trend + Gaussian noise."""
    t = np.arange(start, start + n, dtype="float64")
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * t / 24) + 0.002 * t + (rng.normal(0, noise, n) if noise else 0.0)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkEngine]:
    """A local[2] engine; PySpark's getOrCreate hands it the process's active session if there is one."""
    pytest.importorskip("pyspark")
    engine = SparkEngine("local[2]", conf=TEST_CONF)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def known_run(spark: SparkEngine) -> DDPRun:
    return run_ddp(signal(720), params=KNOWN, num_processes=2, engine=spark)


@pytest.mark.spark
def test_learns_the_known_signal_like_the_single_process_model(known_run: DDPRun):
    # the single-process test's stated error: RMSE < 0.1 x amplitude on the 12 hold-out steps
    truth = signal(12, start=720, noise=0)
    error = rmse(known_run.model.forecast(12), truth)
    single = LSTMForecaster(**KNOWN, threads=1).fit(signal(720))
    assert error < 0.1, error
    assert error < rmse(np.full(12, signal(720)[-1]), truth) / 5
    assert error < 2 * rmse(single.forecast(12), truth) + 0.02
    model = known_run.model
    assert known_run.launcher == "torch-distributor" and known_run.world == 2
    # early stopping as in the single-process model: best weights restored, curves complete
    assert model.best_val_loss_ == min(model.val_losses_)
    assert len(model.val_losses_) in (model.best_epoch_ + 1 + KNOWN["patience"], KNOWN["epochs"])
    assert float(np.mean(model.val_rmse_**2)) == pytest.approx(model.best_val_loss_, rel=1e-4)


@pytest.mark.spark
def test_two_processes_train_disjoint_shards_of_every_window(known_run: DDPRun):
    n_train = 720 - round(720 * 0.2) - KNOWN["input_size"] - KNOWN["horizon"] + 1
    assert known_run.overlap == 0
    assert sum(known_run.shard_windows) == n_train  # 517 windows, 32-window batches: no tail skipped
    assert max(known_run.shard_windows) - min(known_run.shard_windows) <= 1
    assert known_run.model.windows_trained_ == n_train * len(known_run.model.train_losses_)


@pytest.mark.spark
def test_the_state_loads_into_a_forecaster_that_forecasts_and_learns_online(known_run: DDPRun):
    blob = known_run.model.to_bytes()
    loaded = LSTMForecaster.from_bytes(blob)
    assert loaded.params == known_run.model.params
    np.testing.assert_array_equal(loaded.forecast(30), known_run.model.forecast(30))
    before = loaded.forecast(12)
    loaded.update(signal(12, start=720))
    assert loaded.forecast(12).shape == (12,) and not np.array_equal(loaded.forecast(12), before)


def test_rank_batches_are_disjoint_cover_the_epoch_and_change_with_it():
    shards = [rank_batches(103, batch_size=10, rank=r, world=3, seed=7, epoch=2) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # the same number of steps on every rank
    seen = torch.cat([torch.cat(s) for s in shards]).tolist()
    assert len(seen) == len(set(seen)) == 103  # the 3-window tail is one per rank, nothing skipped
    tail = [rank_batches(101, batch_size=10, rank=r, world=3, seed=7, epoch=2) for r in range(3)]
    assert sum(len(b) for s in tail for b in s) == 100  # a 1-window tail is smaller than the world: skipped
    again = rank_batches(103, batch_size=10, rank=0, world=3, seed=7, epoch=3)
    assert not torch.equal(torch.cat(again), torch.cat(shards[0]))


def test_global_model_without_spark_binds_to_each_series():
    series = [signal(300, seed=1), 3 + 2 * signal(260, seed=2)]
    run = run_ddp(series, params=SMALL | {"dropout": 0.1}, num_processes=2)
    assert run.launcher == "torch-multiprocessing" and run.overlap == 0
    assert sum(run.shard_windows) == len(LSTMForecaster(**SMALL)._windows(series).x_train)
    with pytest.raises(ForecastError, match="bound to a series"):
        run.model.forecast(3)
    bound = run.model.bind(series[1])
    assert bound.forecast(6).shape == (6,) and np.all(np.isfinite(bound.forecast(6)))


@pytest.mark.parametrize(
    ("series", "params", "processes", "match"),
    [
        (signal(300), SMALL, 0, "num_processes must be an integer >= 1"),
        (signal(300), SMALL | {"hiden_size": 4}, 2, "bad hyperparameters"),
        (signal(300), SMALL | {"lr": -1.0}, 2, "lr must be a positive number"),
        (signal(20), SMALL, 2, "too few for input_size=24"),
        (np.r_[signal(200), np.nan], SMALL, 2, "NaN/infinite"),
        ("not a series", SMALL, 2, "1-D numpy array or a non-empty list"),
        ([], SMALL, 2, "1-D numpy array or a non-empty list"),
        (signal(38), SMALL | {"val_fraction": 0.0}, 10, "9 training windows cannot be shared by 10"),
    ],
)
def test_bad_input_is_refused_before_any_process_starts(series, params, processes, match):
    with pytest.raises(ForecastError, match=match):
        train_lstm_distributed(series, params=params, num_processes=processes)


@pytest.mark.spark
def test_a_failing_rank_is_reported_with_its_cause(spark: SparkEngine):
    bad = ([np.r_[signal(100), np.nan]], SMALL, True)  # what the caller's checks would have refused
    cause = r"ForecastError: lstm: history has 1 NaN/infinite values \(first at index 100\)"
    with pytest.raises(
        ForecastError, match=r"TorchDistributor training with 2 processes on local\[2\] .*" + cause
    ):
        _distributor(spark, 2, True, bad)


@pytest.mark.spark
def test_tuning_on_spark_records_every_trial(spark: SparkEngine, tmp_path):
    space = {"hidden_size": IntRange(2, 16), "lr": FloatRange(1e-3, 1e-1, log=True)}
    fixed = SMALL | {"epochs": 4}
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = tune(signal(200), space=space, fixed=fixed, n_trials=6, n_workers=2, seed=0, engine=spark,
                  storage=url, study_name="spark-study")  # fmt: skip
    table = result.trials
    assert len(table) == 6 and sorted(table["number"]) == list(range(6))
    assert set(table["state"]) <= {"COMPLETE", "PRUNED"}
    assert result.best_value == table.loc[table.state == "COMPLETE", "value"].min()
    assert 2 <= result.best_params["hidden_size"] <= 16 and result.best_params["epochs"] == 4
    # the study is in the shared storage: resuming it adds trials to the same record
    more = tune(signal(200), space=space, fixed=fixed, n_trials=2, seed=0, engine=spark, storage=url,
                study_name="spark-study")  # fmt: skip
    assert len(more.trials) == 8


def test_tuning_refuses_a_local_sqlite_study_for_a_remote_cluster():
    remote = SparkEngine("spark://10.1.2.3:7077")
    with pytest.raises(ForecastError, match=r"cannot be shared by executors of spark://10\.1\.2\.3:7077"):
        tune(signal(200), space={"lr": FloatRange(1e-3, 1e-1)}, fixed=SMALL, n_trials=2, engine=remote)


@pytest.mark.spark
def test_spark_tasks_keep_order_and_report_a_failing_task(spark: SparkEngine):
    assert spark_tasks(spark, int, ["7", "10", "12"], {"base": 8}) == [7, 8, 10]
    with pytest.raises(
        ForecastError, match=r"a Spark task of int failed: ValueError: invalid literal .* 'zz'"
    ):
        spark_tasks(spark, int, ["1", "zz"], {"base": 10})
    with pytest.raises(ForecastError, match="cannot be sent to Spark tasks"):
        spark_tasks(spark, lambda item: item, [1], {})
