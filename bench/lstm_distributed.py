"""LSTM training with TorchDistributor: 2 data-parallel processes against 1, same data and epochs.

Data: the demo whole-house meter ``WHE`` of ``sparkhu.demo.generator.generate(days=14 x scale)``
(20,160 minutely values at scale 1: 16,049 training windows of T=60 → N=20); the default
model (hidden 60, 1 layer, batch 64, Adam lr 0.01), a fixed number of epochs without early
stopping. Compared fairly on this 2-core machine:

* 1 process: :class:`LSTMForecaster` in this process with ``threads=2`` (its default: each
  batch split over 2 threads), i.e. both cores;
* 2 processes x 1 thread: :func:`run_ddp` through Spark's ``TorchDistributor`` (local mode,
  ``local[2]``), DDP over gloo on loopback, each batch split over the 2 processes;
* for reference, 1 process x 1 thread through TorchDistributor.

Wall time includes starting the processes (torchrun, imports: seconds); windows/s is of the
training loop alone (validation excluded). The two processes compete for the same 2 cores
as the threads do, and add an all-reduce per batch, so no speed-up is expected here: the
ratio shows the cost of the distribution, which pays off across machines.
"""

from __future__ import annotations

import time

from bench import Result
from sparkhu.demo.generator import generate
from sparkhu.engine.spark import SparkEngine
from sparkhu.forecast.distributed import run_ddp
from sparkhu.forecast.models.lstm import LSTMForecaster

CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}


def run(scale: float) -> list[Result]:
    """Measure 2-process DDP training against single-process training."""
    days = max(1.0, 14 * scale)
    y = generate(days=days).clean["WHE"].to_numpy(dtype="float64")
    epochs = max(1, round(3 * scale))
    params = {"epochs": epochs, "patience": 0}
    data = f"WHE, {days:g} days = {y.size:,} values, {epochs} epochs"
    t0 = time.perf_counter()
    single = LSTMForecaster(**params, threads=2).fit(y)
    single_wall = time.perf_counter() - t0
    single_rate = single.windows_trained_ / single.train_seconds_
    engine = SparkEngine("local[2]", conf=CONF)
    try:
        engine.session  # noqa: B018 - start Spark before timing
        timed = {}
        for n in (1, 2):
            t0 = time.perf_counter()
            ddp = run_ddp(y, params=params, num_processes=n, engine=engine)
            timed[n] = (time.perf_counter() - t0, ddp.model.windows_trained_ / ddp.model.train_seconds_, ddp)
    finally:
        engine.close()
    (wall1, rate1, _), (wall2, rate2, run2) = timed[1], timed[2]
    fair = "1 process x 2 threads (LSTMForecaster default) vs 2 processes x 1 thread (DDP/gloo)"
    compete = "2 processes on 2 cores compete with each other (as the 2 threads do); + 1 all-reduce per batch"
    return [
        Result(
            "lstm_ddp", "1 process x 2 threads: wall", single_wall, "s", "", None, f"{data}; in-process fit"
        ),
        Result("lstm_ddp", "1 process x 2 threads: train", single_rate, "windows/s", "", None, data),
        Result(
            "lstm_ddp",
            "TorchDistributor 1 x 1 thread: wall",
            wall1,
            "s",
            "",
            None,
            f"{data}; includes torchrun start-up",
        ),
        Result("lstm_ddp", "TorchDistributor 1 x 1 thread: train", rate1, "windows/s", "", None, data),
        Result(
            "lstm_ddp",
            "TorchDistributor 2 x 1 thread: wall",
            wall2,
            "s",
            "",
            None,
            f"{data}; includes torchrun start-up; shards {run2.shard_windows}, overlap {run2.overlap}",
        ),
        Result(
            "lstm_ddp",
            "TorchDistributor 2 x 1 thread: train",
            rate2,
            "windows/s",
            "",
            None,
            f"{data}; {compete}",
        ),
        Result(
            "lstm_ddp",
            "ratio train 2 proc / 1 proc x 2 threads",
            rate2 / single_rate,
            "x",
            "",
            None,
            f"windows/s; {fair}; {compete}",
        ),
        Result(
            "lstm_ddp",
            "ratio train 2 proc / 1 proc x 1 thread",
            rate2 / rate1,
            "x",
            "",
            None,
            "windows/s, both through TorchDistributor; 2 processes on 2 cores",
        ),
        Result(
            "lstm_ddp",
            "ratio wall 2 proc / 1 proc x 2 threads",
            wall2 / single_wall,
            "x",
            "",
            None,
            f"{fair}; start-up included",
        ),
    ]


if __name__ == "__main__":
    for r in run(1.0):
        print(r)
