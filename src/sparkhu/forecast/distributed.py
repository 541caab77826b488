"""Data-parallel LSTM training: DistributedDataParallel over gloo on CPU, through Spark's TorchDistributor.

The network, windows, scaler, loss and early stopping are those of
:class:`~sparkhu.forecast.models.lstm.LSTMForecaster`; only the batches are spread over
processes. Every process builds the same windows and the same initial weights (seeded),
and in each epoch draws the same permutation (seed ``seed + epoch``, as PyTorch's
``DistributedSampler`` does). Each global batch of ``batch_size`` windows is dealt out
round-robin, so rank ``r`` trains on ``batch[r::world]`` (:func:`rank_batches`): the shards
are disjoint and their union is the epoch. Each rank's summed squared error is weighted
with ``world / (batch · N)`` so that DDP's gradient average is exactly the gradient of the
single-process loss on the whole batch; a tail batch smaller than the world (at most
``world - 1`` windows, different ones every epoch) is skipped. Validation windows are split
the same way and their errors all-reduced, so every rank takes the same early-stopping
decision; rank 0's decision and curves are broadcast to be safe. Dropout masks come from a
generator per rank. Each process uses one torch thread.

Two launchers: with a :class:`~sparkhu.engine.spark.SparkEngine`, Spark's
``TorchDistributor`` (``local_mode=True``: ``torchrun --standalone`` on the driver, which
rendezvous on ``localhost``; ``local_mode=False``: barrier tasks on executors); without
one, ``torch.multiprocessing`` processes meeting at ``tcp://127.0.0.1:<free port>``. On
one machine the gloo transport is bound to the loopback interface.

>>> shards = [rank_batches(10, batch_size=4, rank=r, world=2, seed=0, epoch=0) for r in (0, 1)]
>>> [[len(b) for b in s] for s in shards]
[[2, 2, 1], [2, 2, 1]]
>>> sorted(torch.cat(shards[0] + shards[1]).tolist())
[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""

from __future__ import annotations

import gc
import os
import pickle
import socket
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as torch_mp
from torch.nn.parallel import DistributedDataParallel

from sparkhu.errors import ForecastError
from sparkhu.forecast.models.lstm import LSTMForecaster, mse

if TYPE_CHECKING:
    from sparkhu.engine.spark import SparkEngine

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class DDPRun:
    """What a data-parallel training run gives back: the model and how the work was shared."""

    model: LSTMForecaster
    world: int
    """Number of processes."""
    shard_windows: list[int] = field(default_factory=list)
    """Training windows each rank saw in the first epoch."""
    overlap: int = 0
    """Windows seen by more than one rank in the first epoch (0: disjoint shards)."""
    launcher: str = ""
    """``"torch-distributor"`` or ``"torch-multiprocessing"``."""


def rank_batches(
    n: int, *, batch_size: int, rank: int, world: int, seed: int, epoch: int
) -> list[torch.Tensor]:
    """Window indices of rank ``rank``'s batches in ``epoch`` (one tensor per global batch).

    The permutation is drawn from ``seed + epoch`` (the same on every rank); global batch
    ``k`` is ``perm[k·B:(k+1)·B]`` and the rank takes every ``world``-th window of it
    starting at ``rank``. A tail batch with fewer than ``world`` windows is skipped so that
    every rank has the same number of steps.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) + int(epoch)))
    out = []
    for lo in range(0, n, batch_size):
        batch = perm[lo : lo + batch_size]
        if len(batch) < world:
            break
        out.append(batch[rank::world])
    return out


def train_lstm_distributed(
    series: list[np.ndarray] | np.ndarray,
    *,
    params: dict[str, Any],
    num_processes: int = 2,
    engine: SparkEngine | None = None,
    local_mode: bool = True,
) -> LSTMForecaster:
    """Train an :class:`LSTMForecaster` with ``num_processes`` data-parallel processes.

    ``series``: one history (the result forecasts after it, like ``fit``) or a list of
    histories (one network over all, like ``fit_global``; :meth:`~LSTMForecaster.bind` it).
    ``params``: the forecaster's hyperparameters (``threads`` is ignored: one per process).
    With ``engine`` the processes are launched by Spark's ``TorchDistributor``, otherwise
    by ``torch.multiprocessing``. Raises :class:`ForecastError` for bad input or a failed run.
    """
    return run_ddp(
        series, params=params, num_processes=num_processes, engine=engine, local_mode=local_mode
    ).model


def run_ddp(
    series: list[np.ndarray] | np.ndarray,
    *,
    params: dict[str, Any],
    num_processes: int = 2,
    engine: SparkEngine | None = None,
    local_mode: bool = True,
) -> DDPRun:
    """:func:`train_lstm_distributed`, also telling how the windows were shared (:class:`DDPRun`)."""
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ForecastError(f"lstm ddp: num_processes must be an integer >= 1, got {num_processes!r}")
    arrays, single = _histories(series)
    try:
        model = LSTMForecaster(**params)
    except TypeError as exc:
        raise ForecastError(f"lstm ddp: bad hyperparameters {sorted(params)}: {exc}") from exc
    windows = model._windows(arrays)  # too short, NaN or constant input fails here, before any process starts
    if len(windows.x_train) < num_processes:
        raise ForecastError(
            f"lstm ddp: {len(windows.x_train)} training windows cannot be shared by {num_processes} "
            "processes; use fewer processes or a longer history"
        )
    job = (arrays, dict(params), single)
    if engine is None:
        blob, info = _spawn(num_processes, job)
        launcher = "torch-multiprocessing"
    else:
        blob, info = _distributor(engine, num_processes, local_mode, job)
        launcher = "torch-distributor"
    return DDPRun(LSTMForecaster.from_bytes(blob), num_processes, info["shards"], info["overlap"], launcher)


# ---------------------------------------------------------------------- launchers (caller side)


def _histories(series: list[np.ndarray] | np.ndarray) -> tuple[list[np.ndarray], bool]:
    if isinstance(series, np.ndarray) and series.ndim <= 1:
        return [np.asarray(series, dtype="float64").reshape(-1)], True
    if isinstance(series, list | tuple) and series:
        try:
            return [np.asarray(s, dtype="float64").reshape(-1) for s in series], False
        except (TypeError, ValueError) as exc:
            raise ForecastError(f"lstm ddp: series must be numeric arrays: {exc}") from exc
    raise ForecastError(
        f"lstm ddp: series must be a 1-D numpy array or a non-empty list of them, got {type(series).__name__}"
    )


def _distributor(
    engine: SparkEngine, n: int, local_mode: bool, job: tuple[Any, ...]
) -> tuple[bytes, dict[str, Any]]:
    try:
        from pyspark.ml.torch.distributor import TorchDistributor
    except ImportError as exc:  # pragma: no cover - pyspark is installed with the Spark extra
        raise ForecastError(f"lstm ddp: Spark's TorchDistributor is unavailable ({exc})") from exc
    engine.session  # noqa: B018 - TorchDistributor needs the engine's session to be active
    loopback = local_mode or all(host in _LOOPBACK for host, _ in engine.masters)
    with tempfile.TemporaryDirectory(prefix="sparkhu-ddp-") as errors:
        try:
            with warnings.catch_warnings():
                # TorchDistributor leaves the torchrun pipe for the garbage collector to close
                warnings.simplefilter("ignore", ResourceWarning)
                out = TorchDistributor(num_processes=n, local_mode=local_mode, use_gpu=False).run(
                    _torchrun_main, *job, loopback, errors
                )
                gc.collect()
        except Exception as exc:
            raise ForecastError(
                f"lstm ddp: TorchDistributor training with {n} processes on {engine.uri} failed: "
                f"{_child_error(errors) or _cause(exc)}"
            ) from exc
    if not isinstance(out, tuple) or len(out) != 2:
        raise ForecastError(f"lstm ddp: TorchDistributor returned {type(out).__name__}, not a trained model")
    return out


def _spawn(n: int, job: tuple[Any, ...]) -> tuple[bytes, dict[str, Any]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="sparkhu-ddp-") as tmp:
        try:
            torch_mp.start_processes(
                _spawn_main, args=(n, port, tmp, *job), nprocs=n, join=True, start_method="spawn"
            )
        except Exception as exc:
            raise ForecastError(
                f"lstm ddp: training with {n} processes failed: {_child_error(tmp) or _cause(exc)}"
            ) from exc
        return pickle.loads((Path(tmp) / "rank0.pickle").read_bytes())


def _child_error(folder: str) -> str:
    """The error a rank recorded in ``folder`` (the first by time), or ``""``."""
    files = sorted(Path(folder).glob("*.error"), key=lambda p: p.stat().st_mtime_ns)
    return files[0].read_text() if files else ""


def _cause(exc: BaseException) -> str:
    """The most telling line of a failure reported by a launcher (the child's own error if shown)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error:" in ln or "Exception:" in ln]
    return (errors[-1] if errors else lines[0] if lines else type(exc).__name__)[:600]


# ---------------------------------------------------------------------- one rank (worker side)


def _torchrun_main(
    arrays: list[np.ndarray], params: dict[str, Any], single: bool, loopback: bool, errors: str
) -> tuple[bytes, dict[str, Any]]:
    """Entry point of each torchrun process (RANK, WORLD_SIZE, MASTER_ADDR/PORT set by torchrun)."""
    if loopback:
        _bind_gloo_to_loopback()
    try:
        dist.init_process_group("gloo", timeout=timedelta(minutes=10))
        try:
            result = _train_rank(arrays, params, single)
            dist.barrier()  # as in _spawn_main: no rank tears gloo down while its peer still talks
            return result
        finally:
            dist.destroy_process_group()
    except BaseException as exc:
        _record(errors, exc)
        raise


def _spawn_main(
    rank: int,
    world: int,
    port: int,
    folder: str,
    arrays: list[np.ndarray],
    params: dict[str, Any],
    single: bool,
) -> None:
    """Entry point of each ``torch.multiprocessing`` process; rank 0 writes the result into ``folder``."""
    _bind_gloo_to_loopback()
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world,
            timeout=timedelta(minutes=10),
        )
        try:
            result = _train_rank(arrays, params, single)
            # Both ranks finish talking before either tears gloo down: a rank that destroys the
            # group while its peer still closes its pairs can abort the peer (std::terminate).
            dist.barrier()
        finally:
            dist.destroy_process_group()
    except BaseException as exc:
        _record(folder, exc)
        raise
    if rank == 0:
        (Path(folder) / "rank0.pickle").write_bytes(pickle.dumps(result, protocol=5))


def _record(folder: str, exc: BaseException) -> None:
    """Leave this rank's error for the caller when the folder is on this machine (then re-raised)."""
    if os.path.isdir(folder):
        from sparkhu.engine.base import describe

        Path(folder, f"{os.getpid()}.error").write_text(describe(exc))


def _bind_gloo_to_loopback() -> None:
    """Make gloo use the loopback interface (this process only; never overrides an explicit choice)."""
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    if names:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", names[0])


def _train_rank(
    arrays: list[np.ndarray], params: dict[str, Any], single: bool
) -> tuple[bytes, dict[str, Any]]:
    """Train this rank's share; every rank returns rank 0's (model bytes, sharing info)."""
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    model = LSTMForecaster(**params)
    windows = model._windows(arrays)
    model._build()  # the same seeded initial weights on every rank (DDP broadcasts rank 0's anyway)
    # dropout masks from a generator per rank (the permutation has its own, shared one)
    model._gen = torch.Generator().manual_seed(int(model.seed) * 1_000_003 + 1 + rank)
    net, optimizer = model.net_, model.optimizer_
    assert net is not None and optimizer is not None
    ddp = DistributedDataParallel(net)
    x_tr, y_tr = torch.from_numpy(windows.x_train), torch.from_numpy(windows.y_train)
    x_val, y_val = torch.from_numpy(windows.x_val[rank::world]), torch.from_numpy(windows.y_val[rank::world])
    n, n_val, horizon = len(x_tr), len(windows.x_val), model.horizon
    best_state, best_mse, waited = None, None, 0
    seen = torch.zeros(n, dtype=torch.int32)
    for epoch in range(model.epochs):
        t0 = time.perf_counter()
        stats = torch.zeros(2, dtype=torch.float64)  # summed squared error, windows trained
        for k, idx in enumerate(rank_batches(n, batch_size=model.batch_size, rank=rank, world=world,
                                              seed=model.seed, epoch=epoch)):  # fmt: skip
            b = min(model.batch_size, n - k * model.batch_size)
            if epoch == 0:
                seen[idx] += 1
            loss = mse(ddp(x_tr.index_select(0, idx), model._masks(len(idx))), y_tr.index_select(0, idx))
            optimizer.zero_grad(set_to_none=True)
            (loss * (world / (b * horizon))).backward()  # DDP averages over ranks: the whole batch's mean
            optimizer.step()
            stats[0] += loss.detach()
            stats[1] += len(idx)
        dist.all_reduce(stats)
        model.train_seconds_ += time.perf_counter() - t0
        model.windows_trained_ += int(stats[1])
        model.train_losses_.append(float(stats[0]) / (float(stats[1]) * horizon))
        if n_val == 0:
            continue
        step_mse = _validate(net, x_val, y_val, n_val, horizon)
        val = float(step_mse.mean())
        model.val_losses_.append(val)
        if best_mse is None or val < model.best_val_loss_:
            model.best_val_loss_, model.best_epoch_, waited, best_mse = val, epoch, 0, step_mse
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if model.patience and waited >= model.patience:
                model.stopped_early_ = True
                break
    if best_state is not None and best_mse is not None:
        net.load_state_dict(best_state)
        model.val_rmse_ = best_mse.sqrt().numpy().astype("float64")
    else:
        model.best_epoch_ = len(model.train_losses_) - 1
    if single:
        model._attach(arrays[0], windows.scalers[0])
    model.n_obs_ = sum(len(a) for a in arrays)
    info = _sharing(seen, world)
    payload: list[Any] = [(model.to_bytes(), info) if rank == 0 else None]
    dist.broadcast_object_list(payload, src=0)  # every rank returns the same (TorchDistributor saves each)
    return payload[0]


def _validate(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_val: int, horizon: int
) -> torch.Tensor:
    """Per-step validation MSE over every rank's validation shard (the same tensor on every rank)."""
    with torch.inference_mode():
        sums = ((net(x) - y) ** 2).sum(dim=0) if len(x) else torch.zeros(horizon)
    total = sums.to(torch.float64).clone()
    dist.all_reduce(total)
    dist.broadcast(total, src=0)  # bitwise the same everywhere: one early-stopping decision
    return total / n_val


def _sharing(seen: torch.Tensor, world: int) -> dict[str, Any]:
    """Windows per rank in the first epoch and how many were seen by more than one rank."""
    mine = torch.tensor([int((seen > 0).sum())], dtype=torch.int64)
    counts = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(counts, mine)
    coverage = seen.to(torch.int64)
    dist.all_reduce(coverage)
    return {"shards": [int(c) for c in counts], "overlap": int((coverage > 1).sum())}


def spark_tasks(engine: SparkEngine, fn: Any, items: Sequence[Any], params: dict[str, Any]) -> list[Any]:
    """Run ``fn(item, **params)`` once per item, each in its own Spark task (one partition each).

    Results come back in the items' order; a failure in a task raises :class:`ForecastError`
    with the task's error. Used to spread tuning trials over a Spark cluster.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        blob = pickle.dumps((fn, params), protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ForecastError(
            f"{name} or its arguments cannot be sent to Spark tasks ({exc}); define the function at "
            "the top level of an importable module and pass plain values"
        ) from exc
    tagged = list(enumerate(items))

    def run(part: Any) -> Any:
        from sparkhu.engine.base import describe

        task_fn, task_params = pickle.loads(blob)
        for idx, item in part:
            try:
                yield idx, True, task_fn(item, **task_params)
            except Exception as exc:
                yield idx, False, describe(exc)

    if not tagged:
        return []
    try:
        rows = engine.session.sparkContext.parallelize(tagged, len(tagged)).mapPartitions(run).collect()
    except Exception as exc:
        raise ForecastError(f"Spark tasks of {name} on {engine.uri} failed: "
                            f"{_cause(exc)}") from exc  # fmt: skip
    failures = [value for _, ok, value in rows if not ok]
    if failures:
        raise ForecastError(f"a Spark task of {name} failed: {failures[0]}")
    return [value for _, _, value in sorted(rows, key=lambda r: r[0])]
