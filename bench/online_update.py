"""Online update + 20-step forecast over 1,000 minutely series, and the full online path.

**Models.** 1,000 series of minutely points (a level per series plus noise), the models first
fitted on 60 points each; then, per tick, one new point per series is absorbed and every
series forecast 20 steps with a 95 % interval. Sides, in the same run (A/B/B/A, medians):

* ``bank``: :class:`~sparkhu.forecast.bank.ModelBank` of SES models (state in arrays, one
  update and one forecast across all series per tick) — the online predictor's path;
* ``per model``: the same SES models updated and forecast one series at a time through
  :class:`~sparkhu.forecast.base.Forecaster` (the predictor's path before the bank);
* peer River: ``river.time_series.HoltWinters`` (level only, ``alpha`` = the SES weight),
  ``learn_one`` + ``forecast(20)`` per series per tick; and ``SNARIMAX(1, 0, 0)`` on a tenth of
  the series (it is much slower), its rate scaled to points per second.

Target: ≥ 100,000 points/s and ≥ 10× River.

**Full path.** The online predictor (SES, window 60, horizon 20) on a SQLite bus and the
SQLite prediction store: each tick publishes one point per series (one Arrow message per
partition), each poll takes one tick, and the predictor updates, forecasts, blends, stores and
checkpoints in one transaction and commits the offsets. Points are published first; the
measured time is the predictor draining them (its warm-up ticks not counted). Target: ≥ 50,000
input points/s over 1,000 series. Without :mod:`sparkhu.forecast.bank` (main before it) the
models side measures only the per-model path, so the same file measures before and after.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import Result, interleaved_all
from sparkhu.forecast.models import make_model
from sparkhu.online.learner import OnlinePredictor
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import publish_points
from sparkhu.stream.sqlite import SqliteBus

SERIES = 1_000
HORIZON = 20
WARM = 60
ALPHA = 0.3
STEP_US = 60_000_000
TOPIC = "bench.online"
TARGET_MODELS = 100_000.0
TARGET_PATH = 50_000.0


def _stream(series: int, ticks: int) -> np.ndarray:
    """(ticks, series) minutely values: a level per series plus noise."""
    rng = np.random.default_rng(0)
    return rng.uniform(100, 1000, series)[None, :] + rng.normal(0, 10, (ticks, series))


def _models_side(series: int, ticks: int) -> tuple[dict[str, Callable[[], object]], int]:
    values = _stream(series, WARM + ticks)
    sids = [f"bench/house/m{i:04d}" for i in range(series)]
    fitted = [make_model("ses", alpha=ALPHA).fit(values[:WARM, i]) for i in range(series)]
    stream = values[WARM:]

    runs = 2  # interleaved_all runs each side twice: fresh models, copied before the timing
    copies = [copy.deepcopy(fitted) for _ in range(runs)]

    def per_model() -> None:
        models = copies.pop()
        for row in stream:
            for model, value in zip(models, row, strict=True):
                model.update(np.array([value]))
                model.forecast(HORIZON)
                model.forecast_interval(HORIZON, 0.95)

    def river_hw() -> None:
        from river.time_series import HoltWinters

        models = [HoltWinters(alpha=ALPHA) for _ in range(series)]
        for model, history in zip(models, values[:WARM].T, strict=True):
            for value in history:
                model.learn_one(float(value))
        for row in stream:
            for model, value in zip(models, row.tolist(), strict=True):
                model.learn_one(value)
                model.forecast(HORIZON)

    sides: dict[str, Callable[[], object]] = {"per model": per_model, "river HoltWinters": river_hw}
    try:
        from sparkhu.forecast.bank import ModelBank
    except ImportError:  # main before the bank: only the per-model path exists
        return sides, series * ticks

    banks = []
    for _ in range(runs):
        filled = ModelBank()
        for sid, model in zip(sids, copy.deepcopy(fitted), strict=True):
            filled[sid] = model
        banks.append(filled)

    def bank() -> None:
        models = banks.pop()
        for row in stream:
            models.update_many(sids, list(row.reshape(-1, 1)))
            models.forecast_many(sids, HORIZON, 0.95)

    return {"bank": bank, **sides}, series * ticks


def _snarimax_rate(series: int, ticks: int) -> float:
    """Points/s of River's SNARIMAX(1,0,0) learn_one + forecast(20) on ``series`` series."""
    from river.time_series import SNARIMAX

    values = _stream(series, WARM + ticks)
    models = [SNARIMAX(p=1, d=0, q=0) for _ in range(series)]
    for model, history in zip(models, values[:WARM].T, strict=True):
        for value in history:
            model.learn_one(float(value))
    started = time.perf_counter()
    for row in values[WARM:]:
        for model, value in zip(models, row.tolist(), strict=True):
            model.learn_one(value)
            model.forecast(HORIZON)
    return series * ticks / (time.perf_counter() - started)


def _ets_rate(series: int, ticks: int) -> tuple[float, str]:
    """Points/s of AutoETS (season 24) update + 20-step forecast with interval, one series at a time."""
    values = _stream(series, 240 + ticks) + 20 * np.sin(np.arange(240 + ticks) * 2 * np.pi / 24)[:, None]
    models = [make_model("auto_ets", season_length=24).fit(values[:240, i]) for i in range(series)]
    for model, value in zip(models, values[240], strict=True):
        model.update(np.array([value]))  # the first update after a fit reads the history once
    started = time.perf_counter()
    for row in values[241:]:
        for model, value in zip(models, row, strict=True):
            model.update(np.array([value]))
            model.forecast_interval(HORIZON, 0.95)
    incremental = sum(getattr(m, "ets_state_", None) is not None for m in models)
    return series * (ticks - 1) / (time.perf_counter() - started), f"{incremental}/{series} incremental"


def _tick(sids: list[str], tick: int, row: np.ndarray) -> pa.Table:
    return points(sids, np.full(len(sids), tick * STEP_US, dtype="int64"), row)


def _full_path(series: int, ticks: int) -> tuple[float, str]:
    """Input points/s of bus → predictor → store → commit, one point per series per poll."""
    sids = [f"bench/house/m{i:04d}" for i in range(series)]
    values = _stream(series, WARM + ticks)
    partitions = 4
    with tempfile.TemporaryDirectory(prefix="sparkhu-online-update-") as tmp:
        home = Path(tmp)
        bus = SqliteBus(f"sqlite:///{home / 'bus.db'}", default_partitions=partitions)
        bus.create_topic(TOPIC)
        catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
        store = PredictionStore(catalog.engine)
        predictor = OnlinePredictor(
            bus,
            TOPIC,
            store,
            model="ses",
            model_params={"alpha": ALPHA},
            window=WARM,
            horizon=HORIZON,
            step_s=60,
            min_points=WARM,
            max_messages=partitions,
        )
        for tick in range(WARM):
            publish_points(bus, TOPIC, _tick(sids, tick, values[tick]))
        while predictor.stats().points < series * WARM:
            predictor.run_once(timeout=0.5)
        for tick in range(WARM, WARM + ticks):
            publish_points(bus, TOPIC, _tick(sids, tick, values[tick]))
        before = predictor.stats()
        started = time.perf_counter()
        while predictor.stats().points < series * (WARM + ticks):
            predictor.run_once(timeout=0.5)
        elapsed = time.perf_counter() - started
        stats = predictor.stats()
        predictor.close()
        catalog.close()
        bus.close()
    polls = stats.batches - before.batches
    forecasts = stats.forecasts - before.forecasts
    detail = (
        f"{series} series x {ticks} ticks in {polls} polls, {forecasts:,} forecasts "
        f"({forecasts / elapsed:,.0f} values/s); SQLite bus and store"
    )
    return series * ticks / elapsed, detail


def run(scale: float) -> list[Result]:
    """Both measurements at ``scale`` (1.0: 1,000 series, 30 ticks of models, 20 ticks of path)."""
    ticks = max(3, int(30 * scale))
    sides, n_points = _models_side(SERIES, ticks)
    seconds = interleaved_all(sides)
    rates = {name: n_points / s for name, s in seconds.items()}
    river = rates["river HoltWinters"]
    snarimax = _snarimax_rate(SERIES // 10, ticks)
    ours = rates.get("bank", rates["per model"])
    detail = f"{SERIES} series x {ticks} ticks, SES alpha={ALPHA}, 95 % interval; medians A/B/C/C/B/A"
    results = [
        Result(
            "online_update",
            "update + 20-step forecast" + (" (bank)" if "bank" in rates else " (per model)"),
            ours,
            "points/s",
            f">= {TARGET_MODELS:,.0f}, >= 10x River",
            ours >= TARGET_MODELS and ours >= 10 * river,
            detail,
            "river HoltWinters",
            ours / river,
        ),
        Result(
            "online_update",
            "update + 20-step forecast (per model)",
            rates["per model"],
            "points/s",
            detail="each series through its own Forecaster, the path before the bank",
            peer="river HoltWinters",
            ratio=rates["per model"] / river,
        ),
        Result(
            "online_update",
            "River SNARIMAX(1,0,0) learn_one + forecast",
            snarimax,
            "points/s",
            detail=f"{SERIES // 10} series (SNARIMAX is slow); ours / SNARIMAX = {ours / snarimax:,.0f}x",
        ),
    ]
    ets, ets_detail = _ets_rate(SERIES // 10, ticks)
    results.append(
        Result(
            "online_update",
            "AutoETS update + 20-step forecast (per model)",
            ets,
            "points/s",
            detail=f"{SERIES // 10} series, season 24, {ets_detail}",
        )
    )
    path_rate, path_detail = _full_path(SERIES, max(5, int(20 * scale)))
    results.append(
        Result(
            "online_update",
            "bus → update → forecast → blend → store → commit",
            path_rate,
            "points/s",
            f">= {TARGET_PATH:,.0f}",
            path_rate >= TARGET_PATH,
            path_detail,
        )
    )
    return results
