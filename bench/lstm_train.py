"""LSTM training: throughput against the machine's matmul peak, and the original's table re-measured.

Data: one demo meter, the whole-house ``WHE`` of ``sparkhu.demo.generator.generate(days=14 x
scale)`` (20,160 minutely values at scale 1: 16,049 training and 4,032 validation windows of
T=60 → N=20). The model is the default configuration (the original's: hidden 60, 1 layer,
Adam lr 0.01, batch 64, min-max scaling).

* Throughput: training windows per second of the training loop (validation excluded), with
  the default two shards per batch and with one; FLOPs of one window's forward + backward
  are counted as 3 x (4 gates x (1 + H) x H x 2 x T + 2 x H x N), and compared with the
  best float32 matmul rate measured here (4096², all cores).
* The original's table (1, 100 and 1000 epochs, local mode: 38.8 s, 361.1 s, 4007.2 s):
  one epoch is a real ``fit``; the per-epoch time of a short run is extrapolated to 100 and
  1000 epochs (the detail column says which figures are extrapolated).
* Peer of the throughput: the plain torch loop a user writes for the same model and windows
  (:func:`plain_torch_rate`), interleaved A/B/B/A; the epoch rows name the original's published
  figures as their peer (they cannot be re-run here).
* Time to an early-stopped model: a real ``fit`` with the default ``epochs=100, patience=10``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from bench import Result
from sparkhu.demo.generator import generate
from sparkhu.forecast.models.lstm import LSTMForecaster

TARGET = 10_000
ORIGINAL = {1: 38.8, 100: 361.1, 1000: 4007.2}
ORIGINAL_PEER = "original system (published figure, not re-run)"


def window_flops(t: int = 60, n: int = 20, h: int = 60) -> float:
    """FLOPs of one window's forward and backward pass (LSTM(1→h) over t steps, Linear(h→n))."""
    forward = 4 * (1 + h) * h * 2 * t + 2 * h * n
    return 3.0 * forward


def matmul_peak(size: int = 4096, runs: int = 5) -> float:
    """Best float32 matmul rate of ``runs`` products of two ``size``² matrices, in FLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best


def plain_torch_rate(y: np.ndarray, threads: int | None, epochs: int = 3, t: int = 60, n: int = 20) -> float:
    """Training windows/s of the plain torch loop a user writes for the same model and data:
    min-max scaling, windows of ``t`` → ``n``, ``nn.LSTM(1, 60)`` + ``nn.Linear(60, n)``, Adam
    lr 0.01, batches of 64, shuffled, MSE; the same 80 % of windows as training set."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or min(2, previous))
    try:
        scaled = (y - y.min()) / max(float(y.max() - y.min()), 1e-12)
        windows = np.lib.stride_tricks.sliding_window_view(scaled.astype(np.float32), t + n)
        train = torch.from_numpy(windows[: int(len(windows) * 0.8)].copy())
        x, target = train[:, :t, None], train[:, t:]

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lstm, self.head = torch.nn.LSTM(1, 60, batch_first=True), torch.nn.Linear(60, n)

            def forward(self, batch: torch.Tensor) -> torch.Tensor:
                out, _ = self.lstm(batch)
                return self.head(out[:, -1])

        torch.manual_seed(0)
        net = Net()
        optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
        loss_fn = torch.nn.MSELoss()
        started = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for start in range(0, len(x), 64):
                idx = order[start : start + 64]
                optimiser.zero_grad()
                loss = loss_fn(net(x[idx]), target[idx])
                loss.backward()
                optimiser.step()
        return epochs * len(x) / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)


def _rates(y: np.ndarray, threads: int | None) -> tuple[float, float]:
    """Median training windows/s of ours and of the plain loop, A/B/B/A."""
    ours: list[float] = []
    peer: list[float] = []
    for side in ("ours", "peer", "peer", "ours"):
        if side == "ours":
            model = LSTMForecaster(epochs=3, patience=0, threads=threads).fit(y)
            ours.append(model.windows_trained_ / model.train_seconds_)
        else:
            peer.append(plain_torch_rate(y, threads))
    return statistics.median(ours), statistics.median(peer)


def run(scale: float) -> list[Result]:
    """Measure LSTM training on this machine."""
    days = max(1.0, 14 * scale)
    y = generate(days=days).clean["WHE"].to_numpy(dtype="float64")
    data = f"WHE, {days:g} days = {y.size:,} values"
    peak = matmul_peak()
    flops = window_flops()
    out: list[Result] = []
    for threads in (None, 1):
        rate, peer_rate = _rates(y, threads)
        default = threads is None  # the target is the default configuration's; 1 thread is for reference
        label = "default: 2 shards" if default else "1 thread, reference"
        out.append(
            Result(
                "lstm",
                f"train throughput ({label})",
                rate,
                "windows/s",
                f">= {TARGET:,}" if default else "",
                rate >= TARGET if default else None,
                f"{data}; {rate * flops / 1e9:.1f} GFLOP/s = {100 * rate * flops / peak:.0f} % of "
                f"the {peak / 1e9:.0f} GFLOP/s matmul peak ({flops / 1e6:.2f} MFLOP/window); "
                f"plain loop {peer_rate:,.0f} windows/s",
                peer="plain torch loop (same model, data, batches)",
                ratio=rate / peer_rate,
            )
        )
    t0 = time.perf_counter()
    LSTMForecaster(epochs=1, patience=0).fit(y)
    one = time.perf_counter() - t0
    out.append(
        Result(
            "lstm",
            "1 epoch (fit)",
            one,
            "s",
            f"original {ORIGINAL[1]} s",
            None,
            f"{data}, measured",
            peer=ORIGINAL_PEER,
            ratio=ORIGINAL[1] / one,
        )
    )
    n_measure = min(100, max(3, round(10 * scale)))
    t0 = time.perf_counter()
    model = LSTMForecaster(epochs=n_measure, patience=0).fit(y)
    total = time.perf_counter() - t0
    per_epoch = total / n_measure
    for epochs in (100, 1000):
        measured = epochs == n_measure
        value = total if measured else per_epoch * epochs
        how = "measured" if measured else f"EXTRAPOLATED from {n_measure} epochs ({per_epoch:.2f} s/epoch)"
        out.append(
            Result(
                "lstm",
                f"{epochs} epochs (fit)",
                value,
                "s",
                f"original {ORIGINAL[epochs]} s",
                None,
                f"{data}, {how}",
                peer=ORIGINAL_PEER,
                ratio=ORIGINAL[epochs] / value,
            )
        )
    t0 = time.perf_counter()
    model = LSTMForecaster().fit(y)
    seconds = time.perf_counter() - t0
    out.append(
        Result(
            "lstm",
            "time to early-stopped model",
            seconds,
            "s",
            "",
            None,
            f"{data}; stopped after {len(model.val_losses_)} epochs (best {model.best_epoch_ + 1}, "
            f"val MSE {model.best_val_loss_:.4g} scaled), early={model.stopped_early_}; "
            "no peer: the plain loop has no early stopping to compare",
        )
    )
    return out


if __name__ == "__main__":
    for r in run(1.0):
        print(r)
