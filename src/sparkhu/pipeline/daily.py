"""The daily cleaning DAG: the 13 tasks wired as in ``docs/pipeline.md``.

:func:`daily_dag` imports each task function from ``sparkhu.pipeline.tasks.<module>`` and
binds it to its datasets, look-back and default parameters. ``overrides`` change a task's
parameters (``impute={"strategy": "linear"}``), its look-back (``lookback={"regularity":
timedelta(days=30)}``) or leave tasks out (``exclude=["correlation"]``, which also drops what
depends on them).

>>> [spec.name for spec in WIRING][:4], len(WIRING)
(['validate', 'dedup', 'describe', 'regularity'], 13)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from sparkhu.config import PipelineSettings
from sparkhu.engine.base import Engine
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.dag import Dag
from sparkhu.pipeline.runner import PipelineRunner
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

TASKS_PACKAGE = "sparkhu.pipeline.tasks"


@dataclass(frozen=True)
class TaskSpec:
    """One row of the wiring table: where the function lives and how it is bound."""

    name: str
    function: str  # "<module>.<function>" under sparkhu.pipeline.tasks
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    lookback: timedelta = timedelta(0)
    params: Mapping[str, Any] = field(default_factory=dict)
    scope: Literal["series", "all"] = "series"


WIRING: tuple[TaskSpec, ...] = (
    TaskSpec(
        "validate", "validation.validate", {"points": "raw"}, {"points": "validated", "rejects": "quarantine"}
    ),
    TaskSpec("dedup", "dedup.deduplicate", {"points": "validated"}, {"points": "deduped"}),
    TaskSpec("describe", "stats.describe", {"points": "deduped"}, {"stats": "stats"}),
    TaskSpec(
        "regularity",
        "regularity.analyse",
        {"points": "deduped"},
        {"regularity": "regularity"},
        lookback=timedelta(days=60),
    ),
    TaskSpec("outliers", "outliers.iqr", {"points": "deduped"}, {"points": "inliers", "flags": "outliers"}),
    TaskSpec(
        "missing", "missing.detect", {"points": "inliers"}, {"slots": "missing"}, lookback=timedelta(hours=1)
    ),
    TaskSpec(
        "impute",
        "imputation.impute",
        {"points": "inliers", "slots": "missing"},
        {"points": "imputed"},
        lookback=timedelta(days=7),
    ),
    TaskSpec(
        "decompose",
        "decomposition.decompose",
        {"points": "imputed"},
        {"components": "decomposition"},
        lookback=timedelta(days=14),
    ),
    TaskSpec("anomalies", "anomalies.detect", {"components": "decomposition"}, {"flags": "anomalies"}),
    TaskSpec(
        "handle",
        "anomalies.handle",
        {"points": "imputed", "flags": "anomalies", "components": "decomposition"},
        {"points": "clean"},
        lookback=timedelta(days=1),
    ),
    TaskSpec("normalize", "normalize.normalize", {"points": "clean"}, {"points": "normalized"}),
    TaskSpec(
        "windows",
        "windows.sliding",
        {"points": "normalized"},
        {"windows": "windows"},
        lookback=timedelta(hours=2),  # T + N - 1 = 79 steps of a minute, with room for gaps
        params={"inputs": 60, "outputs": 20, "stride": 20},  # one window per N steps: targets tile the series
    ),
    TaskSpec(
        "correlation",
        "correlation.correlate",
        {"points": "clean"},
        {"pairs": "correlation"},
        lookback=timedelta(days=7),
        scope="all",
    ),
)


AFTER = {"missing": ("regularity",), "impute": ("regularity",), "windows": ("regularity",)}
"""Ordering through series metadata: these tasks read the period that ``regularity`` records."""


def daily_dag(
    *,
    lookback: Mapping[str, timedelta] | None = None,
    exclude: Iterable[str] = (),
    **params: Mapping[str, Any],
) -> Dag:
    """The daily DAG; ``<task>={...}`` overrides parameters, ``lookback`` look-backs, ``exclude`` drops tasks.

    Raises :class:`PipelineError` for an unknown task name or a task function that cannot be
    imported (naming the module to write).
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
            _function(spec),
            spec.inputs,
            spec.outputs,
            params={**spec.params, **params.get(spec.name, {})},
            lookback=spec.lookback,
            scope=spec.scope,
        )
        if lookback and spec.name in lookback:
            task = replace(task, lookback=_lookback(spec.name, lookback[spec.name]))
        tasks.append(task)
    # leaving a task out leaves out its dependents too (their inputs would have no producer)
    while True:
        produced = {"raw"} | {d for t in tasks for d in t.outputs.values()}
        kept = [t for t in tasks if all(d in produced for d in t.inputs.values())]
        if len(kept) == len(tasks):
            break
        tasks = kept
    return Dag(tasks, after=AFTER)


def _function(spec: TaskSpec) -> Any:
    module_name, _, fn_name = spec.function.rpartition(".")
    path = f"{TASKS_PACKAGE}.{module_name}"
    try:
        module = importlib.import_module(path)
    except ImportError as exc:
        raise PipelineError(
            f"task {spec.name!r}: cannot import {path} ({exc}); the module must define {fn_name}"
        ) from exc
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise PipelineError(f"task {spec.name!r}: {path} has no function {fn_name}")
    return fn


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
    **runner_options: Any,
) -> PipelineRunner:
    """A :class:`~sparkhu.pipeline.runner.PipelineRunner` of the daily DAG for ``dataset``.

    ``settings`` (the ``[pipeline]`` section) gives retries, back-off, look-back overrides and
    excluded tasks; reports go to ``<home>/reports`` when ``home`` is given; ``tasks`` overrides
    task parameters; other options go to the runner (``days_per_run``, ``on_progress``...).
    """
    settings = settings or PipelineSettings()
    lookback = {name: timedelta(seconds=s) for name, s in settings.lookback_s.items()}
    dag = daily_dag(lookback=lookback, exclude=settings.exclude, **dict(tasks or {}))
    return PipelineRunner(
        lake,
        catalog,
        engine,
        dag,
        dataset=dataset,
        retries=settings.retries,
        backoff_s=settings.backoff_s,
        report_dir=Path(home) / "reports" if home is not None else None,
        **runner_options,
    )
