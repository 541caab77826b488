"""The daily cleaning DAG: the 13 tasks wired as in ``docs/pipeline.md``.

:data:`WIRING` binds each task function of :mod:`sparkhu.pipeline.tasks` (the function
itself) to its datasets, look-back and default parameters; :func:`daily_dag` builds the
:class:`~sparkhu.pipeline.dag.Dag`. The period and regularity ``regularity`` decides per series
are the metadata dataset ``sampling``: ``missing``, ``impute``, ``decompose`` and ``windows``
read it, so the DAG orders them after ``regularity`` and checks that it is there.
``overrides`` change a task's parameters (``impute={"strategy": "linear"}``), its look-back
(``lookback={"regularity": timedelta(days=30)}``) or leave tasks out
(``exclude=["correlation"]``, which also drops the tasks that read its frames; the readers of
an excluded task's metadata read what the catalog holds).

>>> [spec.name for spec in WIRING][:4], len(WIRING)
(['validate', 'dedup', 'describe', 'regularity'], 13)
>>> dag = daily_dag()
>>> dag.producer[SAMPLING], sorted(t.name for t in dag.tasks if SAMPLING in t.meta_inputs)
('regularity', ['decompose', 'impute', 'missing', 'windows'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from sparkhu.config import PipelineSettings
from sparkhu.engine.base import Engine
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import Task, TaskOutput
from sparkhu.pipeline.dag import SOURCES, Dag, written
from sparkhu.pipeline.hooks import PipelineHooks, ProgressHook
from sparkhu.pipeline.reports import ReportWriter
from sparkhu.pipeline.runner import PipelineRunner
from sparkhu.pipeline.runs import TaskRun
from sparkhu.pipeline.tasks import (
    anomalies,
    correlation,
    decomposition,
    dedup,
    imputation,
    missing,
    normalize,
    outliers,
    regularity,
    stats,
    validation,
    windows,
)
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

SAMPLING = "sampling"
"""Metadata dataset of the sampling period and regularity of each series (``period_s``,
``regular``, ``periodic_error``), decided by ``regularity``."""


@dataclass(frozen=True)
class TaskSpec:
    """One row of the wiring table: the task function and how it is bound."""

    name: str
    fn: Callable[..., TaskOutput]
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    lookback: timedelta = timedelta(0)
    params: Mapping[str, Any] = field(default_factory=dict)
    scope: Literal["series", "all"] = "series"
    meta_inputs: tuple[str, ...] = ()
    meta_output: str | None = None


WIRING: tuple[TaskSpec, ...] = (
    TaskSpec(
        "validate", validation.validate, {"points": "raw"}, {"points": "validated", "rejects": "quarantine"}
    ),
    TaskSpec("dedup", dedup.deduplicate, {"points": "validated"}, {"points": "deduped"}),
    TaskSpec("describe", stats.describe, {"points": "deduped"}, {"stats": "stats"}),
    TaskSpec(
        "regularity",
        regularity.analyse,
        {"points": "deduped"},
        {"regularity": "regularity"},
        lookback=timedelta(days=60),
        meta_output=SAMPLING,
    ),
    TaskSpec("outliers", outliers.iqr, {"points": "deduped"}, {"points": "inliers", "flags": "outliers"}),
    TaskSpec(
        "missing",
        missing.detect,
        {"points": "inliers"},
        {"slots": "missing"},
        lookback=timedelta(hours=1),
        meta_inputs=(SAMPLING,),
    ),
    TaskSpec(
        "impute",
        imputation.impute,
        {"points": "inliers", "slots": "missing"},
        {"points": "imputed"},
        lookback=timedelta(days=7),
        meta_inputs=(SAMPLING,),
    ),
    TaskSpec(
        "decompose",
        decomposition.decompose,
        {"points": "imputed"},
        {"components": "decomposition"},
        lookback=timedelta(days=14),
        meta_inputs=(SAMPLING,),
        meta_output="seasonality",
    ),
    TaskSpec("anomalies", anomalies.detect, {"components": "decomposition"}, {"flags": "anomalies"}),
    TaskSpec(
        "handle",
        anomalies.handle,
        {"points": "imputed", "flags": "anomalies", "components": "decomposition"},
        {"points": "clean"},
        lookback=timedelta(days=1),
    ),
    TaskSpec(
        "normalize",
        normalize.normalize,
        {"points": "clean"},
        {"points": "normalized"},
        meta_output="normalization",
    ),
    TaskSpec(
        "windows",
        windows.sliding,
        {"points": "normalized"},
        {"windows": "windows"},
        lookback=timedelta(hours=2),  # T + N - 1 = 79 steps of a minute, with room for gaps
        params={"inputs": 60, "outputs": 20, "stride": 20},  # one window per N steps: targets tile the series
        meta_inputs=(SAMPLING,),
    ),
    TaskSpec(
        "correlation",
        correlation.correlate,
        {"points": "clean"},
        {"pairs": "correlation"},
        lookback=timedelta(days=7),
        scope="all",
    ),
)


def daily_dag(
    *,
    lookback: Mapping[str, timedelta] | None = None,
    exclude: Iterable[str] = (),
    **params: Mapping[str, Any],
) -> Dag:
    """The daily DAG; ``<task>={...}`` overrides parameters, ``lookback`` look-backs, ``exclude`` drops tasks.

    Raises :class:`PipelineError` for an unknown task name or a bad look-back.
    """
    names = {spec.name for spec in WIRING}
    for given in [*params, *(lookback or {}), *exclude]:
        if given not in names:
            raise PipelineError(
                f"no task {given!r} in the daily DAG; known: {', '.join(s.name for s in WIRING)}"
            )
    dropped = set(exclude)
    tasks = []
    for spec in WIRING:
        if spec.name in dropped:
            continue
        task = Task(
            spec.name,
            spec.fn,
            spec.inputs,
            spec.outputs,
            params={**spec.params, **params.get(spec.name, {})},
            lookback=spec.lookback,
            scope=spec.scope,
            meta_inputs=spec.meta_inputs,
            meta_output=spec.meta_output,
        )
        if lookback and spec.name in lookback:
            task = replace(task, lookback=_lookback(spec.name, lookback[spec.name]))
        tasks.append(task)
    # leaving a task out leaves out its dependents too (their inputs would have no producer)
    while True:
        produced = set(SOURCES) | {d for t in tasks for d in written(t)}
        kept = [t for t in tasks if all(d in produced for d in t.inputs.values())]
        if len(kept) == len(tasks):
            break
        tasks = kept
    # metadata no kept task records is what the catalog holds (recorded by earlier runs)
    from_catalog = {d for t in tasks for d in t.meta_inputs if d not in produced}
    return Dag(tasks, sources=(*SOURCES, *sorted(from_catalog)))


def _lookback(name: str, value: object) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise PipelineError(
            f"look-back of task {name!r} must be a non-negative timedelta or seconds, got {value!r}"
        )
    return value


def daily_runner(
    lake: Lake,
    catalog: Catalog,
    engine: Engine,
    dataset: str,
    *,
    settings: PipelineSettings | None = None,
    home: str | Path | None = None,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    on_progress: Callable[[TaskRun], None] | None = None,
    hooks: Sequence[PipelineHooks] = (),
    **runner_options: Any,
) -> PipelineRunner:
    """A :class:`~sparkhu.pipeline.runner.PipelineRunner` of the daily DAG for ``dataset``.

    ``settings`` (the ``[pipeline]`` section) gives retries, back-off, look-back overrides and
    excluded tasks; ``tasks`` overrides task parameters. Hooks registered (after the run
    records, which every runner writes): a :class:`~sparkhu.pipeline.reports.ReportWriter`
    under ``<home>/reports`` when ``home`` is given, ``hooks``, then a
    :class:`~sparkhu.pipeline.hooks.ProgressHook` calling ``on_progress`` with each finished
    task-day. Other options go to the runner (``days_per_run``, ``threads``...).
    """
    settings = settings or PipelineSettings()
    lookback = {name: timedelta(seconds=s) for name, s in settings.lookback_s.items()}
    dag = daily_dag(lookback=lookback, exclude=settings.exclude, **dict(tasks or {}))
    registered: list[PipelineHooks] = []
    if home is not None:
        registered.append(ReportWriter(Path(home) / "reports", dataset))
    registered.extend(hooks)
    if on_progress is not None:
        registered.append(ProgressHook(on_progress))
    return PipelineRunner(
        lake,
        catalog,
        engine,
        dag,
        dataset=dataset,
        retries=settings.retries,
        backoff_s=settings.backoff_s,
        hooks=registered,
        **runner_options,
    )
