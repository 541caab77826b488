"""Training and one-off forecasts by command: ``sparkhu train``, ``sparkhu predict``, ``sparkhu models``.

Thin bindings of the forecasting layer to a :class:`~sparkhu.app.runtime.Runtime`: the lake,
catalog, prediction store, registry and engine it opens (never the bus).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sparkhu.app.metadata import JobRun, job_lineage, lake_dataset, model_dataset
from sparkhu.app.runtime import Runtime
from sparkhu.config import TrainingPolicy, dataset_name
from sparkhu.errors import NotFoundError
from sparkhu.series import SeriesId

if TYPE_CHECKING:
    import pyarrow as pa

    from sparkhu.forecast.train import TrainConfig, TrainSummary


def train(
    runtime: Runtime,
    dataset: str,
    config: TrainConfig,
    *,
    prefix: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    feature_view: str | None = None,
) -> TrainSummary:
    """Back-test the portfolio per series of ``dataset``, register each champion, store its forecasts.

    With ``feature_view``, the view decides the inputs (its zone and dataset, its series, its window)
    and every model version registered records the view and its version. A series under a training
    policy with ``gate_training`` is registered as ``challenger`` and handed to the controller, which
    promotes it only through the policy's gate (shadow, live error, back-test).
    """
    from dataclasses import replace

    from sparkhu.app.control import training_policies
    from sparkhu.control.policies import policy_for
    from sparkhu.forecast.train import train_series
    from sparkhu.metadata.features import get_view

    view = get_view(runtime.catalog, feature_view) if feature_view else None
    gated = _Gated(training_policies(runtime))
    zone: str | None = None
    series: list[str] | None = None
    if view is not None:
        zone, dataset = view.location
        if (zone, dataset) not in runtime.lake.datasets(zone):
            raise NotFoundError(
                f"feature view {view.name!r} reads {zone}/{dataset}, which is not in the lake yet"
            )
        series = view.select(runtime.lake.series(zone, dataset))
        if not series:
            raise NotFoundError(f"feature view {view.name!r} selects no series of {zone}/{dataset}")
        config = replace(config, max_points=view.window, period_s=view.period_s)
    with job_lineage(runtime, "train_series") as run:
        summary = train_series(
            runtime.lake,
            runtime.catalog,
            runtime.predictions,
            runtime.registry,
            series,
            dataset=dataset,
            zone=zone,
            prefix=prefix,
            start=start,
            end=end,
            config=config,
            engine=runtime.engine,
            progress=progress,
            challengers=gated,
        )
        for result in summary.results:
            policy = policy_for(result.series_id, gated.policies)
            if result.version is not None and result.series_id in gated and policy is not None:
                from sparkhu.control.moves import adopt_challenger

                adopt_challenger(
                    runtime.catalog,
                    runtime.registry,
                    result.series_id,
                    result.version,
                    policy=policy,
                    actor="train",
                )
        if view is not None and view.version is not None:
            runtime.catalog.link_feature_view(summary.run_id, view.name, view.version)
        _trained(runtime, run, summary)
    return summary


def _trained(runtime: Runtime, run: JobRun, summary: TrainSummary, model: str | None = None) -> None:
    """What a training run's OpenLineage events say: its catalog run, the lake dataset it read, the
    model versions it registered (of the global ``model``, or each series'), the forecasts it stored."""
    from sparkhu.forecast.registry import registered_name

    run.run_id = summary.run_id
    run.inputs.append(lake_dataset(runtime, f"{summary.zone}/{summary.dataset}"))
    versions = {
        (registered_name(model or r.series_id), r.version) for r in summary.results if r.version is not None
    }
    run.outputs.extend(model_dataset(runtime, name, version) for name, version in sorted(versions))
    if any(r.forecasts for r in summary.results):
        run.outputs.append(("predictions", "forecasts_raw"))
    failed = len(summary.failed)
    run.detail.update(series=len(summary.results), failed=failed)
    if failed and failed == len(summary.results):
        run.status = "failed"


class _Gated:
    """The series whose training policy gates ``sparkhu train`` (``gate_training``), as a container."""

    def __init__(self, policies: Sequence[TrainingPolicy]) -> None:
        self.policies = list(policies)

    def __contains__(self, series_id: object) -> bool:
        from sparkhu.control.policies import policy_for

        policy = policy_for(str(series_id), self.policies) if self.policies else None
        return policy is not None and policy.gate_training


def train_global(
    runtime: Runtime, dataset: str, model: str, config: TrainConfig, *, prefix: str = ""
) -> TrainSummary:
    """Train ONE ``model`` over the series of ``dataset``, scored per series, registered once."""
    from sparkhu.forecast.global_train import train_global as fit_global

    with job_lineage(runtime, f"global/{model}") as run:
        summary = fit_global(
            runtime.lake,
            runtime.catalog,
            runtime.predictions,
            runtime.registry,
            dataset=dataset,
            model=model,
            prefix=prefix,
            config=config,
        )
        _trained(runtime, run, summary, model)
    return summary


def predict(
    runtime: Runtime, series_id: str, *, horizon: int | None = None, alias: str = "champion"
) -> pa.Table:
    """Forecast ``series_id`` with its model of ``alias`` from its last point; stored and returned."""
    from sparkhu.forecast.predict import predict_series

    sid = SeriesId.parse(series_id)
    return predict_series(
        runtime.lake,
        runtime.predictions,
        runtime.registry,
        series_id,
        dataset=dataset_name(sid.source, sid.measurement),
        horizon=horizon or runtime.settings.forecast.horizon,
        alias=alias,
    )
