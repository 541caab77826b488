"""A direct multi-step LSTM in PyTorch (CPU): the original system's model, without its bugs.

``LSTM(1 → hidden, layers) → Linear(hidden → N)`` maps the last ``input_size`` (T) values to
the next ``horizon`` (N) at once; Adam on the mean squared error; min-max scaling fitted on
the training part only and kept with the model. Windows are chronological (see
:mod:`sparkhu.forecast.windows`) and predictions and targets must have the same shape (the
original broadcast ``[B, N]`` against ``[B, N, 1]``). Training stops early when the loss on
the time-ordered validation part has not improved for ``patience`` epochs, and the best
weights are restored. ``update(y_new)`` takes ``update_steps`` warm-started Adam steps on the
newest windows (online learning). ``forecast(h)`` is direct for ``h ≤ N`` and feeds its own
predictions back for longer horizons. ``fit_global`` trains one network on windows pooled from
many series (each scaled by its own scaler); :meth:`LSTMForecaster.bind` then gives a model
for one of them.

Speed: the whole window tensor is built once and batches are gathered with one
``index_select`` per step; the loss is summed without a host sync per step. A batch is split
into ``threads`` shards whose gradients are computed concurrently by threads with one
intra-op thread each (oneDNN's LSTM on 64 windows is too small to parallelise inside; the
sum of the shard gradients is the batch gradient, so the result is the same algorithm).

Randomness: initial weights, shuffling and dropout masks come from a ``torch.Generator``
seeded by ``seed``; the global RNG is neither read nor advanced. The one process-wide
setting touched is torch's intra-op thread count, set to 1 for the duration of
``fit``/``update`` and restored afterwards. Results are reproducible for the same ``seed``
and ``threads`` (different shard counts sum gradients in a different order).

>>> y = np.sin(np.arange(400) / 5.0)
>>> m = LSTMForecaster(input_size=20, horizon=5, hidden_size=16, epochs=30, threads=1).fit(y)
>>> m.forecast(5).shape, bool(np.abs(m.forecast(5) - np.sin(np.arange(400, 405) / 5.0)).max() < 0.3)
((5,), True)
>>> LSTMForecaster.from_bytes(m.to_bytes()).forecast(3).tolist() == m.forecast(3).tolist()
True
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import torch
from torch import nn

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.windows import MinMaxScaler, WindowSet, sliding_windows, split_point, training_windows

EpochHook = Callable[[int, float], None]
"""Called after each epoch with (epoch, validation MSE); may raise to stop (e.g. Optuna pruning)."""

_VAL_CHUNK = 4096
_FORMAT = 1


class _Net(nn.Module):
    """Stacked single-layer LSTMs (so dropout between them can use our generator) and a head."""

    def __init__(self, hidden: int, layers: int, horizon: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.LSTM(1 if i == 0 else hidden, hidden, batch_first=True) for i in range(layers)
        )
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        out, h = x.unsqueeze(-1), x  # (B, T, 1); h is set by the first layer
        for i, layer in enumerate(self.layers):
            if masks is not None and i > 0:
                out = out * masks[i - 1]
            out, (h, _) = layer(out)
        last = h[-1]  # (B, hidden)
        if masks is not None:
            last = last * masks[-1]
        return self.head(last)  # (B, N)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed squared error of same-shaped tensors; a shape mismatch is an error, never a broadcast."""
    if pred.shape != target.shape:
        raise ForecastError(
            f"lstm: prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}; "
            "they must match exactly (broadcasting would train on the wrong loss)"
        )
    return ((pred - target) ** 2).sum()


def _grads(
    net: _Net,
    params: list[nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    masks: list[torch.Tensor] | None,
    weight: float,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    loss = mse(net(x, masks), y) * weight
    return torch.autograd.grad(loss, params), loss.detach()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextmanager
def _threads(n: int) -> Iterator[ThreadPoolExecutor | None]:
    """One intra-op thread per shard, ``n - 1`` helper threads; the old setting restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    pool = ThreadPoolExecutor(n - 1, initializer=torch.set_num_threads, initargs=(1,)) if n > 1 else None
    try:
        yield pool
    finally:
        if pool is not None:
            pool.shutdown()
        torch.set_num_threads(previous)


class LSTMForecaster(Forecaster):
    """Direct multi-step LSTM forecaster (see the module docstring).

    Hyperparameters: ``input_size`` T, ``horizon`` N, ``hidden_size``, ``num_layers``, ``lr``,
    ``batch_size``, ``epochs`` (maximum), ``patience`` (epochs without validation improvement;
    0 disables early stopping), ``val_fraction`` (time-ordered hold-out, 0 = none),
    ``scaler`` (``"minmax"`` or ``"none"``), ``dropout`` (between layers and before the head),
    ``seed``, ``threads`` (shards per batch; ``None`` = up to 2 cores), ``update_steps``
    (Adam steps per :meth:`update`). Histories must be free of NaN.
    Learned state: ``net_``, ``optimizer_``, ``scaler_``, ``history_`` (the newest raw values),
    the curves ``train_losses_``/``val_losses_``, ``best_epoch_``, ``best_val_loss_``,
    ``stopped_early_``, ``val_rmse_`` (per step, scaled units), ``train_seconds_``,
    ``windows_trained_``.
    """

    name = "lstm"
    reports_epochs: ClassVar[bool] = True
    """``fit`` accepts ``on_epoch`` and reports the validation MSE (used by tuning to prune)."""

    net_: _Net | None
    optimizer_: torch.optim.Adam | None
    scaler_: MinMaxScaler | None
    history_: np.ndarray

    def __init__(
        self,
        input_size: int = 60,
        horizon: int = 20,
        hidden_size: int = 60,
        num_layers: int = 1,
        lr: float = 0.01,
        batch_size: int = 64,
        epochs: int = 100,
        patience: int = 10,
        val_fraction: float = 0.2,
        scaler: str = "minmax",
        dropout: float = 0.0,
        seed: int = 0,
        threads: int | None = None,
        update_steps: int = 5,
    ) -> None:
        for key, value, low in (
            ("input_size", input_size, 1),
            ("horizon", horizon, 1),
            ("hidden_size", hidden_size, 1),
            ("num_layers", num_layers, 1),
            ("batch_size", batch_size, 1),
            ("epochs", epochs, 1),
            ("patience", patience, 0),
            ("update_steps", update_steps, 0),
            ("seed", seed, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ForecastError(f"lstm: {key} must be an integer >= {low}, got {value!r}")
        if not (isinstance(lr, int | float) and lr > 0):
            raise ForecastError(f"lstm: lr must be a positive number, got {lr!r}")
        if not 0.0 <= dropout < 1.0:
            raise ForecastError(f"lstm: dropout must be in [0, 1), got {dropout!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ForecastError(f"lstm: val_fraction must be in [0, 1), got {val_fraction!r}")
        if scaler not in ("minmax", "none"):
            raise ForecastError(f"lstm: scaler must be 'minmax' or 'none', got {scaler!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ForecastError(f"lstm: threads must be None or an integer >= 1, got {threads!r}")
        self.input_size, self.horizon, self.hidden_size = input_size, horizon, hidden_size
        self.num_layers, self.lr, self.batch_size, self.epochs = num_layers, lr, batch_size, epochs
        self.patience, self.val_fraction, self.scaler, self.dropout = patience, val_fraction, scaler, dropout
        self.seed, self.threads, self.update_steps = seed, threads, update_steps
        self._on_epoch: EpochHook | None = None
        super().__init__()

    # ---- state -----------------------------------------------------------------------
    def _reset(self) -> None:
        self.net_ = self.optimizer_ = self.scaler_ = None
        self.history_ = np.empty(0)
        self.train_losses_: list[float] = []
        self.val_losses_: list[float] = []
        self.best_epoch_ = -1
        self.best_val_loss_ = math.nan
        self.stopped_early_ = False
        self.val_rmse_ = np.full(self.horizon, np.nan)
        self.train_seconds_ = 0.0
        self.windows_trained_ = 0
        self._gen = torch.Generator().manual_seed(int(self.seed))

    def _build(self) -> None:
        with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG
            net = _Net(self.hidden_size, self.num_layers, self.horizon)
        bound = 1.0 / math.sqrt(self.hidden_size)  # torch's own default ranges, from our generator
        with torch.no_grad():
            for p in net.parameters():
                p.uniform_(-bound, bound, generator=self._gen)
        self.net_ = net
        self.optimizer_ = torch.optim.Adam(net.parameters(), lr=float(self.lr), foreach=True)

    # ---- verbs -----------------------------------------------------------------------
    def fit(self, y: np.ndarray, ts: np.ndarray | None = None, *, on_epoch: EpochHook | None = None) -> Self:
        """See :meth:`Forecaster.fit`; ``on_epoch(epoch, val_mse)`` is called after every epoch."""
        self._on_epoch = on_epoch
        try:
            return super().fit(y, ts)
        finally:
            self._on_epoch = None

    def _fit(self, y: np.ndarray) -> None:
        windows = self._windows([y])
        self._train(windows)
        self._attach(y, windows.scalers[0])

    def fit_global(self, series: Sequence[np.ndarray], *, on_epoch: EpochHook | None = None) -> Self:
        """Train one network on windows pooled from every series in ``series`` (replacing any state).

        Each series gets its own scaler (fitted on its training part). The result forecasts
        nothing by itself: :meth:`bind` it to a series' history.
        """
        self.reset()
        windows = self._windows([np.asarray(s, dtype="float64").reshape(-1) for s in series])
        self._on_epoch = on_epoch
        try:
            self._train(windows)
        finally:
            self._on_epoch = None
        self.n_obs_ = sum(len(s) for s in series)
        return self

    def bind(self, y: np.ndarray) -> LSTMForecaster:
        """A copy with these weights that forecasts after the history ``y`` (scaler fitted on it).

        For a globally trained model; ``y`` needs at least ``input_size`` values and no NaN.
        """
        if self.net_ is None:
            raise ForecastError("lstm: bind before fit; call fit_global(series) or fit(y) first")
        arr = np.asarray(y, dtype="float64").reshape(-1)
        self._check_finite(arr)
        if arr.size < self.input_size:
            raise ForecastError(
                f"lstm: bind needs at least input_size={self.input_size} values, got {arr.size}"
            )
        cut = max(split_point(arr.size, self.val_fraction), self.input_size)
        out = self.clone()
        for key in (
            "train_losses_",
            "val_losses_",
            "best_epoch_",
            "best_val_loss_",
            "stopped_early_",
            "val_rmse_",
            "train_seconds_",
            "windows_trained_",
        ):
            setattr(out, key, copy.deepcopy(getattr(self, key)))
        out._build()
        assert out.net_ is not None and out.optimizer_ is not None
        out.net_.load_state_dict(self.net_.state_dict())
        out._attach(arr, MinMaxScaler.fit(arr[:cut], self.scaler, "lstm"))
        out.n_obs_ = arr.size
        return out

    def _update(self, y_new: np.ndarray) -> None:
        self._check_finite(y_new)
        if self.net_ is None or self.scaler_ is None:
            raise ForecastError("lstm: a globally trained model must be bound to a series (bind(y)) first")
        self.history_ = np.concatenate([self.history_, y_new])[-self._capacity() :]
        if self.update_steps == 0:
            return
        x, t = sliding_windows(self.scaler_.transform(self.history_), self.input_size, self.horizon)
        if len(x) == 0:
            return
        xb = torch.from_numpy(np.ascontiguousarray(x[-self.batch_size :]))
        yb = torch.from_numpy(np.ascontiguousarray(t[-self.batch_size :]))
        with _threads(self._shards()) as pool:
            for _ in range(self.update_steps):
                self._step(xb, yb, pool)

    def _forecast(self, horizon: int) -> np.ndarray:
        if self.net_ is None or self.scaler_ is None or self.history_.size < self.input_size:
            raise ForecastError("lstm: a globally trained model must be bound to a series (bind(y)) first")
        window = torch.from_numpy(self.scaler_.transform(self.history_[-self.input_size :]))
        out: list[torch.Tensor] = []
        with torch.inference_mode():
            for _ in range(math.ceil(horizon / self.horizon)):
                pred = self.net_(window[None, :])[0]
                out.append(pred)
                window = torch.cat([window, pred])[-self.input_size :]
        return self.scaler_.inverse(torch.cat(out)[:horizon].numpy())

    def _forecast_sd(self, horizon: int) -> np.ndarray:
        """Validation RMSE per step; beyond N the block's RMSE grows with the square root of the block."""
        assert self.scaler_ is not None
        steps = np.arange(horizon)
        rmse = self.val_rmse_[steps % self.horizon] * np.sqrt(steps // self.horizon + 1)
        return rmse * (self.scaler_.high - self.scaler_.low)

    # ---- training ----------------------------------------------------------------------
    def _windows(self, series: list[np.ndarray]) -> WindowSet:
        return training_windows(series, self.input_size, self.horizon, self.val_fraction, self.scaler, "lstm")

    def _attach(self, y: np.ndarray, scaler: MinMaxScaler) -> None:
        self.scaler_ = scaler
        self.history_ = np.array(y[-self._capacity() :], dtype="float64")

    def _shards(self) -> int:
        return self.threads or min(2, _cores())

    def _capacity(self) -> int:
        return self.input_size + self.horizon + self.batch_size - 1

    @staticmethod
    def _check_finite(y: np.ndarray) -> None:
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise ForecastError(
                f"lstm: {bad.size} new values are NaN/infinite (first at index {bad[0]}); impute them first"
            )

    def _masks(self, b: int) -> list[torch.Tensor] | None:
        if self.dropout == 0.0:
            return None
        keep = 1.0 - self.dropout
        shapes = [(b, self.input_size, self.hidden_size)] * (self.num_layers - 1) + [(b, self.hidden_size)]
        return [torch.bernoulli(torch.full(s, keep), generator=self._gen) / keep for s in shapes]

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, pool: ThreadPoolExecutor | None) -> torch.Tensor:
        """One Adam step on a batch, its shards' gradients computed concurrently; returns the loss."""
        assert self.net_ is not None and self.optimizer_ is not None
        net, params = self.net_, list(self.net_.parameters())
        b = xb.shape[0]
        masks = self._masks(b)
        weight = 1.0 / (b * self.horizon)
        shards = 1 if pool is None else min(self._shards(), max(1, b // 16))
        edges = np.linspace(0, b, shards + 1).astype(int).tolist()

        def part(lo: int, hi: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            sub = None if masks is None else [m[lo:hi] for m in masks]
            return _grads(net, params, xb[lo:hi], yb[lo:hi], sub, weight)

        pairs = list(itertools.pairwise(edges))
        futures = [pool.submit(part, lo, hi) for lo, hi in pairs[1:]] if pool else []
        grads, loss = part(*pairs[0])
        for future in futures:
            more, more_loss = future.result()
            grads = tuple(g + h for g, h in zip(grads, more, strict=True))
            loss = loss + more_loss
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        self.optimizer_.step()
        self.windows_trained_ += b
        return loss

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, pool: ThreadPoolExecutor | None) -> torch.Tensor:
        """Mean squared error per step (N,) over the windows, in scaled units."""
        assert self.net_ is not None
        net = self.net_

        def chunk(lo: int) -> torch.Tensor:
            with torch.inference_mode():
                pred = net(x[lo : lo + _VAL_CHUNK])
                target = y[lo : lo + _VAL_CHUNK]
                mse(pred, target)  # shape check
                return ((pred - target) ** 2).sum(dim=0)

        starts = range(0, len(x), _VAL_CHUNK)
        parts = list(pool.map(chunk, starts)) if pool is not None else [chunk(lo) for lo in starts]
        return torch.stack(parts).sum(dim=0) / len(x)

    def _train(self, windows: WindowSet) -> None:
        self._build()
        x_tr, y_tr = torch.from_numpy(windows.x_train), torch.from_numpy(windows.y_train)
        x_val, y_val = torch.from_numpy(windows.x_val), torch.from_numpy(windows.y_val)
        has_val = len(x_val) > 0
        n, best_state, waited = len(x_tr), None, 0
        with _threads(self._shards()) as pool:
            for epoch in range(self.epochs):
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=self._gen)
                total = torch.zeros((), dtype=torch.float64)
                for lo in range(0, n, self.batch_size):
                    idx = perm[lo : lo + self.batch_size]
                    total += self._step(x_tr.index_select(0, idx), y_tr.index_select(0, idx), pool) * len(idx)
                self.train_seconds_ += time.perf_counter() - t0
                self.train_losses_.append(float(total) / n)
                if not has_val:
                    continue
                val = float(self._evaluate(x_val, y_val, pool).mean())
                self.val_losses_.append(val)
                if self._on_epoch is not None:
                    self._on_epoch(epoch, val)
                if val < self.best_val_loss_ or (math.isnan(self.best_val_loss_) and not math.isnan(val)):
                    assert self.net_ is not None
                    self.best_val_loss_, self.best_epoch_, waited = val, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in self.net_.state_dict().items()}
                else:
                    waited += 1
                    if self.patience and waited >= self.patience:
                        self.stopped_early_ = True
                        break
            assert self.net_ is not None
            if best_state is not None:
                self.net_.load_state_dict(best_state)
                self.val_rmse_ = self._evaluate(x_val, y_val, pool).sqrt().numpy().astype("float64")
            else:
                self.best_epoch_ = len(self.train_losses_) - 1

    # ---- persistence -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The fitted model (hyperparameters, weights, optimizer, scaler, newest values) as bytes."""
        if self.net_ is None or self.optimizer_ is None:
            raise ForecastError("lstm: nothing to save before fit; call fit(y) first")
        payload = {
            "format": _FORMAT,
            "params": json.dumps(self.params),
            "net": self.net_.state_dict(),
            "optimizer": self.optimizer_.state_dict(),
            "scaler": None if self.scaler_ is None else [self.scaler_.low, self.scaler_.high],
            "history": torch.from_numpy(self.history_),
            "val_rmse": torch.from_numpy(self.val_rmse_),
            "curves": [self.train_losses_, self.val_losses_],
            "meta": [
                self.n_obs_,
                self.best_epoch_,
                self.best_val_loss_,
                self.stopped_early_,
                self.train_seconds_,
                self.windows_trained_,
            ],
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LSTMForecaster:
        """A model saved by :meth:`to_bytes` (weights-only unpickling: no code is run)."""
        try:
            payload = torch.load(io.BytesIO(data), weights_only=True)
            if payload.get("format") != _FORMAT:
                raise ForecastError(
                    f"lstm: unknown saved format {payload.get('format')!r}; expected {_FORMAT}"
                )
            model = cls(**json.loads(payload["params"]))
            model._build()
            assert model.net_ is not None and model.optimizer_ is not None
            model.net_.load_state_dict(payload["net"])
            model.optimizer_.load_state_dict(payload["optimizer"])
        except ForecastError:
            raise
        except (
            RuntimeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            EOFError,
            pickle.UnpicklingError,
        ) as exc:
            raise ForecastError(f"lstm: cannot load the saved model: {exc}") from exc
        scaler = payload["scaler"]
        model.scaler_ = None if scaler is None else MinMaxScaler(*scaler)
        model.history_ = payload["history"].numpy().copy()
        model.val_rmse_ = payload["val_rmse"].numpy().copy()
        model.train_losses_, model.val_losses_ = payload["curves"]
        (
            model.n_obs_,
            model.best_epoch_,
            model.best_val_loss_,
            model.stopped_early_,
            model.train_seconds_,
            model.windows_trained_,
        ) = payload["meta"]
        return model

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_bytes` to ``path``."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> LSTMForecaster:
        """Read a model written by :meth:`save`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ForecastError(f"lstm: cannot read saved model {path}: {exc}") from exc
        return cls.from_bytes(data)
