"""Hyperparameter tuning with Optuna: TPE sampling, median pruning, trials in parallel processes.

A search space maps hyperparameter names to :class:`Choice`, :class:`IntRange` or
:class:`FloatRange`. The objective is the validation MSE: for a model that reports epochs
(the LSTM) the best validation loss of its own time-ordered split, reported after each
epoch so that unpromising trials are pruned (Optuna's median rule); for any other model
the MSE of a forecast of the last ``holdout`` values from the rest. The default space is
the original system's LSTM space (:data:`LSTM_SPACE`).

With ``n_workers`` > 1 the trials run in that many processes of the local engine, sharing
one Optuna study in an RDB storage (a temporary SQLite file unless ``storage`` names one);
each process samples with seed ``seed + worker``. One worker gives reproducible results for
a seed; several give the same quality, not the same trial order.

On Spark (``engine=`` a :class:`~sparkhu.engine.spark.SparkEngine`) each worker's share of
the trials is one Spark task (a job of ``n_workers`` partitions), all sharing the study's
RDB storage. The default temporary SQLite file serves ``local[N]`` and a cluster whose
workers run on this machine; a cluster elsewhere needs a database every executor reaches,
e.g. ``storage="postgresql://user@db-host/sparkhu"`` (the catalog's PostgreSQL).

>>> space = {"alpha": FloatRange(0.05, 0.95)}
>>> y = np.cumsum(np.ones(60))
>>> result = tune(y, model="ses", space=space, n_trials=8, holdout=5, seed=1)
>>> bool(result.best_value == result.trials["value"].min()), len(result.trials)
(True, 8)
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
import optuna
import pandas as pd
import sqlalchemy.exc

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster

if TYPE_CHECKING:
    from sparkhu.engine.spark import SparkEngine


@dataclass(frozen=True)
class Choice:
    """One of ``choices``."""

    choices: tuple[Any, ...]


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]`` (log-uniform when ``log``)."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]`` (log-uniform when ``log``)."""

    low: float
    high: float
    log: bool = False


Space = Mapping[str, Choice | IntRange | FloatRange]

LSTM_SPACE: Space = {
    "hidden_size": Choice((2, 4, 8, 16, 32, 64)),
    "num_layers": IntRange(1, 5),
    "lr": FloatRange(1e-3, 1e-1, log=True),
}
"""The original system's LSTM search space."""


@dataclass(frozen=True)
class TuneResult:
    """Best hyperparameters (sampled ones merged over ``fixed``), best MSE and every trial."""

    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame = field(repr=False)
    """One row per trial: ``number``, ``state``, ``value``, one column per hyperparameter, ``seconds``."""
    study_name: str = ""


def tune(
    y: np.ndarray,
    model: str = "lstm",
    space: Space | None = None,
    *,
    fixed: Mapping[str, Any] | None = None,
    n_trials: int = 20,
    timeout: float | None = None,
    seed: int = 0,
    storage: str | None = None,
    study_name: str | None = None,
    n_workers: int = 1,
    holdout: int = 20,
    engine: SparkEngine | None = None,
) -> TuneResult:
    """Search ``space`` for the hyperparameters of ``model`` that minimise the validation MSE on ``y``.

    ``fixed``: hyperparameters every trial uses (e.g. ``{"epochs": 20}``); ``timeout`` (s)
    bounds each worker; ``storage``: an Optuna RDB URL (``sqlite:///...``,
    ``postgresql://...``), required to resume a study by ``study_name``; ``engine``: run the
    workers as Spark tasks (see the module docstring). Raises
    :class:`ForecastError` for an unknown model, a bad space or when every trial failed.
    """
    space = dict(LSTM_SPACE if space is None else space)
    fixed = dict(fixed or {})
    if n_trials < 1 or n_workers < 1:
        raise ForecastError(f"tune: n_trials and n_workers must be >= 1, got {n_trials}, {n_workers}")
    _check_space(space)
    arr = np.asarray(y, dtype="float64").reshape(-1)
    _make(model, fixed)  # unknown model or bad fixed hyperparameters fail here, not in every trial
    name = study_name or f"sparkhu-{model}-{seed}"
    job: _Job = {
        "y": arr,
        "model": model,
        "space": space,
        "fixed": fixed,
        "timeout": timeout,
        "holdout": holdout,
    }
    if engine is None and n_workers == 1:
        study = _study(storage, name, seed)
        _optimize(study, n_trials=n_trials, **job)
        return _result(study, space, fixed, model)
    with tempfile.TemporaryDirectory(prefix="sparkhu-tune-") as tmp:
        # the workers share one study, so it lives in an RDB storage every one of them reaches
        url = storage if storage is not None else f"sqlite:///{Path(tmp) / 'study.db'}"
        _study(url, name, seed)  # create it here, so a bad storage fails once, before any worker
        shares = [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]
        work = [(i, share) for i, share in enumerate(shares) if share]
        params = {**job, "url": url, "name": name, "seed": seed}
        if engine is not None:
            _on_spark(engine, url, work, params)
        else:
            _on_processes(n_workers, work, params)
        return _result(optuna.load_study(study_name=name, storage=url), space, fixed, model)


class _Job(TypedDict):
    """What every worker needs, besides the study, to run its share of the trials."""

    y: np.ndarray
    model: str
    space: Space
    fixed: Mapping[str, Any]
    timeout: float | None
    holdout: int


# ------------------------------------------------------------------- the parallel backends


def _on_processes(n_workers: int, work: list[tuple[int, int]], params: dict[str, Any]) -> None:
    """Each worker's share of the trials in a process of the local engine."""
    from sparkhu.engine.local import LocalEngine  # the engine layer, only for parallel trials

    with LocalEngine(workers=n_workers, min_rows_for_pool=0, chunks_per_worker=1) as local:
        outcomes = local.map_inputs(_worker, work, params)
    errors = [getattr(o, "error", None) for o in outcomes if getattr(o, "error", None)]
    if errors:
        raise ForecastError(f"tune: a worker process failed: {errors[0]}")


def _on_spark(engine: SparkEngine, url: str, work: list[tuple[int, int]], params: dict[str, Any]) -> None:
    """Each worker's share of the trials as one Spark task against the shared storage ``url``."""
    from sparkhu.forecast.distributed import spark_tasks

    remote = [host for host, _ in engine.masters if host not in ("127.0.0.1", "localhost", "::1")]
    if remote and url.startswith("sqlite"):
        raise ForecastError(
            f"tune: a study in SQLite ({url}) cannot be shared by executors of {engine.uri}; pass "
            "storage='postgresql://user@host/db' (a database every executor reaches)"
        )
    spark_tasks(engine, _worker, work, params)


def _check_space(space: Mapping[str, Any]) -> None:
    if not space:
        raise ForecastError("tune: the search space is empty; give at least one hyperparameter")
    for key, dim in space.items():
        if isinstance(dim, Choice):
            ok = len(dim.choices) > 0
        elif isinstance(dim, IntRange | FloatRange):
            ok = dim.low <= dim.high and (not dim.log or dim.low > 0)
        else:
            ok = False
        if not ok:
            raise ForecastError(
                f"tune: bad search dimension {key}={dim!r}; use Choice(non-empty), "
                "IntRange/FloatRange(low <= high, low > 0 when log)"
            )


def _make(model: str, params: Mapping[str, Any]) -> Forecaster:
    from sparkhu.forecast.models import make_model

    return make_model(model, **params)


def _study(url: str | None, name: str, seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    try:
        return optuna.create_study(
            study_name=name, storage=url, sampler=sampler, pruner=pruner, direction="minimize",
            load_if_exists=True,
        )  # fmt: skip
    except (optuna.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError, ValueError, ImportError) as exc:
        raise ForecastError(f"tune: cannot open the study {name!r} in {url}: {exc}") from exc


def _worker(item: tuple[int, int], *, url: str, name: str, seed: int, **job: Unpack[_Job]) -> int:
    """One engine worker: load the shared study with its own sampler seed and run its share."""
    worker, share = item
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.load_study(
        study_name=name,
        storage=url,
        sampler=optuna.samplers.TPESampler(seed=seed + worker),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    )
    if job["model"] == "lstm":
        job["fixed"] = {"threads": 1, **job["fixed"]}  # one core per process
    _optimize(study, n_trials=share, **job)
    return share


def _optimize(
    study: optuna.Study,
    *,
    y: np.ndarray,
    model: str,
    space: Mapping[str, Any],
    fixed: Mapping[str, Any],
    n_trials: int,
    timeout: float | None,
    holdout: int,
) -> None:
    def objective(trial: optuna.Trial) -> float:
        params = dict(fixed) | {key: _suggest(trial, key, dim) for key, dim in space.items()}
        forecaster = _make(model, params)
        if getattr(forecaster, "reports_epochs", False):

            def report(epoch: int, value: float) -> None:
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            forecaster.fit(y, on_epoch=report)  # type: ignore[call-arg]
            return float(forecaster.best_val_loss_)  # type: ignore[attr-defined]
        if y.size <= holdout:
            raise ForecastError(f"tune: {y.size} values leave nothing to fit before a hold-out of {holdout}")
        pred = forecaster.fit(y[:-holdout]).forecast(holdout)
        return float(np.mean((pred - y[-holdout:]) ** 2))

    study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(ForecastError,))


def _suggest(trial: optuna.Trial, key: str, dim: Choice | IntRange | FloatRange) -> Any:
    if isinstance(dim, Choice):
        return trial.suggest_categorical(key, list(dim.choices))
    if isinstance(dim, IntRange):
        return trial.suggest_int(key, dim.low, dim.high, log=dim.log)
    return trial.suggest_float(key, dim.low, dim.high, log=dim.log)


def _result(
    study: optuna.Study, space: Mapping[str, Any], fixed: Mapping[str, Any], model: str
) -> TuneResult:
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": np.nan if t.value is None else t.value,
            **{key: t.params.get(key) for key in space},
            "seconds": np.nan if t.duration is None else t.duration.total_seconds(),
        }
        for t in study.trials
    ]
    trials = pd.DataFrame(rows, columns=["number", "state", "value", *space, "seconds"])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ForecastError(
            f"tune: none of the {len(study.trials)} trials of {model} completed; check that the series "
            "is long enough for the model (see the trial states)"
        )
    best = min(complete, key=lambda t: t.value if t.value is not None else np.inf)
    return TuneResult(dict(fixed) | best.params, float(best.value or 0.0), trials, study.study_name)
