"""Batch training: history from the lake → champion per series by back-test → registry → forecasts.

:func:`train_series` reads the history of a dataset (the ``clean`` zone when the pipeline
produced it, else ``raw``), resamples every series to the period (mean per slot, NaN for an
empty slot) and maps :func:`train_one` over the series with an engine (a process pool for
many series). For each series it

1. checks the history: a series that is mostly missing (more than ``max_missing`` of its
   slots empty), constant, or too short for a back-test (fewer than
   ``2 * season_length + horizon + (windows - 1) * step`` observed points) gets the documented
   fallback, the naive forecast (last value), with the reason recorded; a series with no
   observed value at all fails (recorded, the run goes on);
2. otherwise back-tests every model of the portfolio on rolling origins (``windows``
   origins ``step`` apart, ``horizon`` steps each) and picks the one with the lowest MASE;
3. fits the champion on the whole history and wraps it in :class:`Calibrated`, whose
   intervals are conformal (the quantile of the champion's absolute back-test errors);
4. logs the run to the registry (parameters, metrics, score table, back-test plot, the model)
   and registers it under the alias ``champion``, then forecasts ``horizon`` steps from the
   last slot and writes them, with lower/upper and ``model = "<model>@v<version>"``, to the
   prediction store. A series named in ``challengers`` (its training policy gates training, or the
   controller retrains it) is registered as ``challenger`` instead, and its forecasts are not
   stored: it serves only once the controller's gate promotes it.

Failures of one series (back-test or registry) are recorded in the summary and the catalog's
run record; they never stop the other series.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import math
import pickle
import time
import uuid
from collections.abc import Container, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkhu.engine.base import Engine
from sparkhu.errors import ForecastError, NotFoundError, SparkhuError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models import MODELS, make_model
from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import FORECAST_SCHEMA, PredictionStore
from sparkhu.storage.writes import writing_run

log = logging.getLogger(__name__)

DEFAULT_PORTFOLIO = ("seasonal_naive", "ses")
FALLBACK = "naive"
RUN_KIND = "train"


@dataclass(frozen=True)
class TrainConfig:
    """How to train: period and season in slots, back-test shape, portfolio, interval coverage."""

    horizon: int = 20
    season_length: int = 1440
    period_s: float = 60.0
    portfolio: tuple[str, ...] = DEFAULT_PORTFOLIO
    windows: int = 3
    step: int | None = None
    """Slots between back-test origins (default: ``horizon``)."""
    coverage: float = 0.95
    max_missing: float = 0.5
    max_points: int | None = None
    """Train on at most this many of the newest slots per series (None: all)."""
    alias: Literal["champion", "challenger"] = "champion"
    plot: bool = True

    def __post_init__(self) -> None:
        for name in ("horizon", "season_length", "windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ForecastError(f"training: {name} must be a positive integer, got {value!r}")
        if not self.period_s > 0:
            raise ForecastError(f"training: period_s must be > 0 seconds, got {self.period_s!r}")
        if not 0.0 < self.coverage < 1.0:
            raise ForecastError(f"training: coverage must be in (0, 1), got {self.coverage!r}")
        if not self.portfolio:
            raise ForecastError("training: the portfolio is empty; name at least one model")
        unknown = [name for name in self.portfolio if name not in MODELS]
        if unknown:
            raise ForecastError(
                f"unknown model(s) {', '.join(map(repr, unknown))} in the portfolio; "
                f"known models: {', '.join(MODELS.keys())}"
            )


@dataclass(frozen=True)
class SeriesResult:
    """The outcome of training one series."""

    series_id: str
    status: Literal["trained", "fallback", "failed"]
    champion: str | None = None
    score: float | None = None
    runner_up: str | None = None
    runner_up_score: float | None = None
    reason: str | None = None
    version: int | None = None
    run_id: str | None = None
    forecasts: int = 0


@dataclass
class TrainSummary:
    """Every series' outcome, where the history came from and how long it took."""

    results: list[SeriesResult] = field(default_factory=list)
    zone: str = ""
    dataset: str = ""
    seconds: float = 0.0
    run_id: str = ""

    @property
    def failed(self) -> list[SeriesResult]:
        """Series that got no model."""
        return [r for r in self.results if r.status == "failed"]

    def table(self) -> pd.DataFrame:
        """One row per series (the CLI's champion table)."""
        return pd.DataFrame([asdict(r) for r in self.results])


class Calibrated(Forecaster):
    """A fitted model with conformal intervals: ``forecast ± width`` at ``coverage``.

    ``width``: the half-width per step (the last one repeats past its end); other coverages
    fall back to the wrapped model's own intervals. Verbs pass through to ``model``.

    >>> from sparkhu.forecast.models import make_model
    >>> m = Calibrated(make_model("ses", alpha=0.5).fit(np.array([1.0, 3.0])), width=[1.0], coverage=0.9)
    >>> [b.tolist() for b in m.forecast_interval(2, 0.9)], m.name
    ([[1.0, 1.0], [3.0, 3.0]], 'ses')
    """

    def __init__(
        self, model: Forecaster, width: Sequence[float] | None = None, coverage: float = 0.95
    ) -> None:
        self.model = model
        self.width = None if width is None else [float(w) for w in width]
        self.coverage = coverage
        super().__init__()
        self.n_obs_ = model.n_obs_

    @property
    def name(self) -> str:  # type: ignore[override]
        """The wrapped model's name."""
        return self.model.name

    def clone(self, **overrides: Any) -> Self:
        """An unfitted copy (the wrapped model cloned too)."""
        params = {"model": self.model.clone(), "width": self.width, "coverage": self.coverage} | overrides
        return type(self)(**params)

    def _reset(self) -> None:
        pass

    def _fit(self, y: np.ndarray) -> None:
        self.model.fit(y)

    def _update(self, y_new: np.ndarray) -> None:
        self.model.update(y_new)

    def _forecast(self, horizon: int) -> np.ndarray:
        return self.model.forecast(horizon)

    def _forecast_sd(self, horizon: int) -> np.ndarray:
        return self.model._forecast_sd(horizon)

    def forecast_interval(self, horizon: int, coverage: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Conformal bounds at the calibrated coverage, the wrapped model's otherwise."""
        if self.width is None or not math.isclose(coverage, self.coverage):
            self._check_ready(horizon)
            return self.model.forecast_interval(horizon, coverage)
        mean = self.forecast(horizon)
        width = np.asarray(self.width)
        per_step = width[np.minimum(np.arange(horizon), width.size - 1)]
        return mean - per_step, mean + per_step


# ---- one series (runs in a worker) --------------------------------------------------------
def regular(frame: pd.DataFrame, period_s: float) -> tuple[np.ndarray, int]:
    """Values on a regular grid of ``period_s`` (slot mean, NaN when empty) and the last slot (µs).

    >>> f = pd.DataFrame({"ts": pd.to_datetime([0, 30, 150], unit="s", utc=True), "value": [1.0, 3.0, 5.0]})
    >>> y, last = regular(f, 60)
    >>> y.tolist(), last
    ([2.0, nan, 5.0], 120000000)
    """
    period_us = round(period_s * 1_000_000)
    ts = frame["ts"].dt.as_unit("us").astype("int64").to_numpy()
    slot = ts // period_us
    values = frame["value"].to_numpy(dtype="float64")
    ok = np.isfinite(values)
    if not ok.any():
        raise ForecastError("no observed value in the history")
    lo, hi = int(slot.min()), int(slot.max())
    sums = np.bincount(slot[ok] - lo, weights=values[ok], minlength=hi - lo + 1)
    counts = np.bincount(slot[ok] - lo, minlength=hi - lo + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return y, hi * period_us


def candidate(name: str, season_length: int, horizon: int) -> Forecaster:
    """A new model of ``name``, given ``season_length`` and ``output`` (= horizon) when it takes them."""
    accepted = inspect.signature(MODELS.get(name)).parameters if name in MODELS else {}
    given = {"season_length": season_length, "output": horizon}
    return make_model(name, **{k: v for k, v in given.items() if k in accepted})


def check_history(y: np.ndarray, cfg: TrainConfig) -> str | None:
    """Why ``y`` cannot be back-tested (the fallback's reason), or None when it can."""
    observed = np.isfinite(y)
    n_obs = int(observed.sum())
    missing = 1.0 - n_obs / y.size
    if missing > cfg.max_missing:
        return f"mostly missing: {missing:.0%} of {y.size} slots are empty (limit {cfg.max_missing:.0%})"
    if np.nanmax(y) == np.nanmin(y):
        return f"constant series (every value is {float(np.nanmax(y)):g})"
    step = cfg.step or cfg.horizon
    needed = 2 * cfg.season_length + cfg.horizon + (cfg.windows - 1) * step
    if n_obs < needed:
        return (
            f"too short: {n_obs} observed points, a back-test needs {needed} "
            f"(2 × season {cfg.season_length} + horizon {cfg.horizon} + {cfg.windows - 1} × step {step})"
        )
    return None


def select(
    y: np.ndarray, cfg: TrainConfig
) -> tuple[pd.DataFrame, str, float, str | None, float, Calibrated, Any]:
    """Back-test the portfolio (:func:`~sparkhu.forecast.selection.select_champion`, MASE), fit the
    champion on all of ``y`` with conformal intervals from its back-test residuals.

    Returns the score table, the champion, its score, the runner-up and its score, the model
    and the champion's back-test (:class:`~sparkhu.forecast.backtest.BacktestResult`).
    """
    from sparkhu.forecast.intervals import ConformalIntervals
    from sparkhu.forecast.selection import select_champion

    candidates = [candidate(name, cfg.season_length, cfg.horizon) for name in cfg.portfolio]
    selection = select_champion(
        y,
        candidates,
        horizon=cfg.horizon,
        step=cfg.step or cfg.horizon,
        windows=cfg.windows,
        season_length=cfg.season_length,
        metric="mase",
    )
    table = pd.DataFrame(selection.table())
    ranked = [row["model"] for row in selection.table() if row.get("error") is None]
    champion = selection.champion
    runner_up = ranked[1] if len(ranked) > 1 else None
    score = float(selection.scores[champion]["mase"])
    runner_score = float(selection.scores[runner_up]["mase"]) if runner_up else math.nan
    intervals = ConformalIntervals(cfg.coverage).fit(selection.results[champion].residuals)
    model = Calibrated(selection.champion_model().fit(y), intervals.widths_.tolist(), cfg.coverage)
    return table, champion, score, runner_up, runner_score, model, selection.results[champion]


def train_one(frame: pd.DataFrame, series_id: str, *, config: dict[str, Any]) -> pd.DataFrame:
    """Select, fit and calibrate the champion of one series (an engine's series function).

    Returns one row: the champion, scores, the pickled :class:`Calibrated` model, the
    back-test plot (PNG) and the last slot's timestamp.
    """
    cfg = TrainConfig(**{**config, "portfolio": tuple(config["portfolio"])})
    y, last_ts_us = regular(frame, cfg.period_s)
    if cfg.max_points is not None:
        y = y[-cfg.max_points :]
    reason = check_history(y, cfg)
    scores = pd.DataFrame()
    png = b""
    if reason is None:
        try:
            scores, champion, score, runner_up, runner_score, model, result = select(y, cfg)
        except ForecastError as exc:
            reason = f"no model of the portfolio could be back-tested: {exc}"
    if reason is not None:
        model = Calibrated(make_model("seasonal_naive", season_length=1).fit(y), None, cfg.coverage)
        champion, score, runner_up, runner_score = FALLBACK, math.nan, None, math.nan
    elif cfg.plot:
        png = _plot(series_id, y, result, cfg)
    return pd.DataFrame(
        {
            "champion": [champion],
            "score": [score],
            "runner_up": [runner_up],
            "runner_up_score": [runner_score],
            "reason": [reason],
            "scores": [scores.to_json(orient="records")],
            "model": [pickle.dumps(model)],
            "png": [png],
            "last_ts_us": [last_ts_us],
            "slots": [int(y.size)],
        }
    )


def _plot(series_id: str, y: np.ndarray, result: Any, cfg: TrainConfig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h = cfg.horizon
    first = int(result.origins.min()) if result.origins.size else y.size - h
    lo = max(0, first - 3 * h)
    figure = Figure(figsize=(8, 3), dpi=80)
    ax = figure.add_subplot()
    ax.plot(np.arange(lo, y.size), y[lo:], color="0.3", lw=1, label="actual")
    for k, origin in enumerate(result.origins.tolist()):
        xs = np.arange(origin, origin + h)
        label = None if k else "back-test"
        ax.plot(xs, result.forecasts[k], color="tab:orange", lw=1.5, label=label)
    ax.set_title(f"{series_id}: back-test", fontsize=9)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


# ---- the service ----------------------------------------------------------------------------
def history_series(
    lake: Lake, dataset: str, zone: str | None, series: Sequence[str] | None, prefix: str
) -> tuple[str, list[str]]:
    """The zone to train from (``clean`` when the pipeline produced it, else ``raw``) and the series.

    ``series`` must all be in the lake; otherwise every series starting with ``prefix``. Raises
    :class:`NotFoundError` naming what is missing.
    """
    zone = zone or ("clean" if ("clean", dataset) in lake.datasets("clean") else "raw")
    if (zone, dataset) not in lake.datasets(zone):
        raise NotFoundError(f"dataset {dataset!r} is not in the lake's {zone} zone; ingest it first")
    known = lake.series(zone, dataset)
    if series is not None:
        missing = sorted(set(series) - set(known))
        if missing:
            raise NotFoundError(
                f"series {', '.join(missing)} not in {zone}/{dataset}; "
                f"known: {', '.join(known[:5]) or 'none'}{' ...' if len(known) > 5 else ''}"
            )
        wanted = sorted(series)
    else:
        wanted = [s for s in known if s.startswith(prefix)]
        if not wanted:
            raise NotFoundError(f"no series of {zone}/{dataset} starts with {prefix!r}")
    return zone, wanted


def train_series(
    lake: Lake,
    catalog: Catalog,
    predictions: PredictionStore,
    registry: Any,
    series: Sequence[str] | None = None,
    *,
    dataset: str,
    zone: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    config: TrainConfig | None = None,
    engine: Engine | None = None,
    prefix: str = "",
    progress: Any = None,
    challengers: Container[str] = (),
) -> TrainSummary:
    """Train, register and forecast every series of ``dataset`` (or those in ``series`` / with ``prefix``).

    ``zone``: ``None`` picks ``clean`` when the pipeline has produced it, else ``raw``.
    ``[start, end)`` bounds the history. Raises :class:`NotFoundError` for a dataset or a
    series that is not in the lake; per-series problems end up in the summary. The series in
    ``challengers`` are registered under the alias ``challenger`` whatever ``config.alias`` says
    (a training policy gates them), and a challenger's forecasts are not stored: it does not serve.
    """
    from sparkhu.engine.local import LocalEngine

    config = config or TrainConfig()
    began = time.perf_counter()
    zone, wanted = history_series(lake, dataset, zone, series, prefix)
    history = lake.read(zone, dataset, series=wanted, start=start, end=end)
    run_id = f"train-{uuid.uuid4().hex[:12]}"
    summary = TrainSummary(zone=zone, dataset=dataset, run_id=run_id)
    catalog.start_run(
        RunRecord(
            run_id,
            RUN_KIND,
            "train_series",
            "running",
            datetime.now(UTC),
            interval_start=start,
            interval_end=end,
            params={"dataset": f"{zone}/{dataset}", "series": len(wanted), **_jsonable(asdict(config))},
        )
    )
    own_engine = engine is None
    engine = engine or LocalEngine(1)
    try:
        result = engine.map_series(train_one, history, config=asdict(config))
    finally:
        if own_engine:
            engine.close()
    for sid, error in result.failures:
        summary.results.append(SeriesResult(sid, "failed", reason=error))
    seen = (
        set(result.table.column("series_id").cast(pa.string()).to_pylist())
        if result.table.num_rows
        else set()
    )
    for sid in wanted:
        if sid not in seen and all(r.series_id != sid for r in summary.results):
            summary.results.append(SeriesResult(sid, "failed", reason="no points in the requested range"))
    rows = result.table.to_pylist()
    forecasts: list[pa.Table] = []
    with writing_run(run_id):  # the model versions registered are this run's
        for done, row in enumerate(rows, start=1):
            alias = "challenger" if str(row["series_id"]) in challengers else config.alias
            outcome, table = _register(registry, row, config, alias)
            summary.results.append(outcome)
            if table is not None:
                forecasts.append(table)
            if progress is not None:
                progress(done, len(rows))
    stored = predictions.write(pa.concat_tables(forecasts)) if forecasts else 0
    summary.results.sort(key=lambda r: r.series_id)
    summary.seconds = time.perf_counter() - began
    failed = summary.failed
    catalog.finish_run(
        run_id,
        "failed" if failed and len(failed) == len(summary.results) else "success",
        rows_in=history.num_rows,
        rows_out=stored,
        error="; ".join(f"{r.series_id}: {r.reason}" for r in failed)[:2000] or None,
    )
    return summary


def _register(
    registry: Any, row: Mapping[str, Any], cfg: TrainConfig, alias: Literal["champion", "challenger"]
) -> tuple[SeriesResult, pa.Table | None]:
    sid = str(row["series_id"])
    score = row["score"] if row["score"] == row["score"] else None
    runner_score = row["runner_up_score"] if row["runner_up_score"] == row["runner_up_score"] else None
    status: Literal["trained", "fallback"] = "fallback" if row["reason"] else "trained"
    try:
        model: Calibrated = pickle.loads(row["model"])
        scores = pd.DataFrame(json.loads(row["scores"])) if row["scores"] else None
        metrics = {"mase": score, "runner_up_mase": runner_score, "slots": float(row["slots"])}
        if scores is not None and len(scores):
            for col in ("mae", "rmse"):
                metrics[col] = float(scores[col].iloc[0])
        done = registry.log_training(
            sid,
            model,
            params={
                "champion": row["champion"],
                "runner_up": row["runner_up"],
                "fallback_reason": row["reason"],
                "portfolio": list(cfg.portfolio),
                "horizon": cfg.horizon,
                "season_length": cfg.season_length,
                "windows": cfg.windows,
                "step": cfg.step or cfg.horizon,
                "period_s": cfg.period_s,
                "coverage": cfg.coverage,
            },
            metrics=metrics,
            backtest=scores,
            plot_png=row["png"] or None,
            state={"conformal_width": model.width, "coverage": model.coverage},
            meta={"period_s": cfg.period_s, "last_ts_us": int(row["last_ts_us"]), "series_id": sid},
            alias=alias,
        )
        table = forecast_table(sid, model, int(row["last_ts_us"]), cfg, f"{model.name}@v{done.version}")
    except SparkhuError as exc:
        log.warning("training %s: %s", sid, exc)
        return SeriesResult(sid, "failed", champion=row["champion"], reason=str(exc)), None
    if alias == "challenger":
        table = None  # a challenger does not serve until promoted
    outcome = SeriesResult(
        sid,
        status,
        champion=row["champion"],
        score=score,
        runner_up=row["runner_up"],
        runner_up_score=runner_score,
        reason=row["reason"],
        version=done.version,
        run_id=done.run_id,
        forecasts=0 if table is None else table.num_rows,
    )
    return outcome, table


def forecast_table(
    series_id: str,
    model: Forecaster,
    origin_us: int,
    cfg: TrainConfig,
    label: str,
    coverage: float | None = None,
) -> pa.Table:
    """The next ``horizon`` forecasts of ``model`` from ``origin_us`` as a FORECAST_SCHEMA table."""
    h = cfg.horizon
    value = model.forecast(h)
    lower, upper = model.forecast_interval(h, coverage or cfg.coverage)
    steps = np.arange(1, h + 1, dtype="int32")
    target = origin_us + steps.astype("int64") * round(cfg.period_s * 1_000_000)
    ok = np.isfinite(value)
    ts = FORECAST_SCHEMA.field("origin_ts").type
    return pa.Table.from_arrays(
        [
            pa.array([series_id] * int(ok.sum()), pa.string()),
            pa.array(np.full(h, origin_us, dtype="int64")[ok]).cast(ts),
            pa.array(target[ok]).cast(ts),
            pa.array(steps[ok]),
            pa.array(value[ok]),
            pa.array(np.where(np.isfinite(lower), lower, np.nan)[ok], from_pandas=True),
            pa.array(np.where(np.isfinite(upper), upper, np.nan)[ok], from_pandas=True),
            pa.array([label] * int(ok.sum()), pa.string()),
        ],
        schema=FORECAST_SCHEMA,
    )


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
