"""The controller in the running platform, and its bindings to the training path.

:func:`add_controller` adds the controller (:mod:`sparkhu.control.controller`) to ``sparkhu up``'s
platform when training policies exist (``[[policies]]`` or set at run time): it governs the series
of the platform's online predictors and retrains with :func:`retrain_challenger`, the path of
``sparkhu train`` (:mod:`sparkhu.forecast.train`) over the lake's ``raw`` zone — the freshest data,
which the daily pipeline has not cleaned yet — registered as ``challenger``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from sparkhu.app.platform import Platform
from sparkhu.app.runtime import Runtime
from sparkhu.config import TrainingPolicy, dataset_name
from sparkhu.control.controller import Controller
from sparkhu.control.evidence import StoreEvidence
from sparkhu.control.policies import policies_in_force
from sparkhu.errors import ConfigError, ForecastError
from sparkhu.online.learner import OnlinePredictor
from sparkhu.series import SeriesId
from sparkhu.timeaxis import from_us, parse_duration

log = logging.getLogger(__name__)


def training_policies(runtime: Runtime) -> list[TrainingPolicy]:
    """The training policies in force: ``[[policies]]`` and those set at run time (these win)."""
    return policies_in_force(runtime.catalog, runtime.settings.policies)


def retrain_challenger(
    runtime: Runtime, series_id: str, policy: TrainingPolicy, *, period_s: float = 60.0
) -> int:
    """Train ``series_id`` on its last ``policy.window`` of raw points with ``sparkhu train``'s path and
    register the result as ``challenger``; its version. :class:`ForecastError` when it got no model."""
    from sparkhu.forecast.train import TrainConfig, train_series

    sid = SeriesId.parse(series_id)
    settings = runtime.settings
    last = StoreEvidence(runtime.predictions, runtime.lake).last_ts(series_id)
    if last is None:
        raise ForecastError(f"{series_id}: no points in the lake to retrain on")
    start = from_us(last) - parse_duration(policy.window, "window") + timedelta(microseconds=-1)
    config = TrainConfig(
        horizon=settings.forecast.horizon,
        season_length=settings.forecast.season_length,
        period_s=period_s,
        alias="challenger",
        plot=False,
    )
    engine = None
    if policy.engine == "spark":
        if not settings.engine.uri.startswith(("spark://", "local[")):
            raise ConfigError(
                f"policy {policy.name!r} trains on Spark but [engine] uri is {settings.engine.uri!r}; "
                "set it to spark://host:port or local[N]"
            )
        engine = runtime.engine
    summary = train_series(
        runtime.lake,
        runtime.catalog,
        runtime.predictions,
        runtime.registry,
        [series_id],
        dataset=dataset_name(sid.source, sid.measurement),
        zone="raw",
        start=start,
        config=config,
        engine=engine,
        challengers=[series_id],
    )
    result = summary.results[0]
    if result.version is None:
        raise ForecastError(f"{series_id}: training failed: {result.reason}")
    return result.version


def add_controller(
    platform: Platform, runtime: Runtime, predictors: Mapping[str, OnlinePredictor], *, tick_s: float = 5.0
) -> Controller | None:
    """Add the controller over ``predictors`` (dataset → its online predictor) when policies exist."""
    if not training_policies(runtime):
        return None

    def predictor_of(series_id: str) -> OnlinePredictor | None:
        sid = SeriesId.parse(series_id)
        return predictors.get(dataset_name(sid.source, sid.measurement))

    def series() -> set[str]:
        return set().union(*(p.known_series() for p in predictors.values()))

    def retrain(series_id: str, policy: TrainingPolicy) -> int:
        predictor = predictor_of(series_id)
        period = predictor.step_s if predictor is not None else 60.0
        return retrain_challenger(runtime, series_id, policy, period_s=period)

    controller = Controller(
        runtime.catalog,
        runtime.registry,
        StoreEvidence(runtime.predictions, runtime.lake),
        policies=lambda: training_policies(runtime),
        retrain=retrain,
        series=series,
        predictor_of=predictor_of,
        tick_s=tick_s,
    )
    platform.add("controller", controller.run, figures=controller.figures)
    return controller
