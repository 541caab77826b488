"""The daily cleaning DAG as an Airflow DAG: one Airflow task per pipeline task, or per task group.

Each Airflow task runs ``sparkhu pipeline run --task T --only --day {day}``: exactly that task for
the run's day, reading its inputs from the lake as the upstream tasks left them and replacing its
own day partitions, so Airflow's retries and back-fills are as safe as sparkhu's runs. The edges
are the pipeline DAG's (:meth:`~sparkhu.pipeline.dag.Dag.upstream`); with ``group_by="task-group"``
the tasks of a group of :data:`TASK_GROUPS` run as one Airflow task (one sparkhu process) — fewer
processes and less scheduling overhead, coarser retries. Schedule, retries and excluded tasks
come from ``[pipeline]``; catch-up, start date and timeouts from ``[airflow]``.

>>> [name for name in TASK_GROUPS]
['quality', 'gaps', 'anomalies', 'features']
"""

from __future__ import annotations

from datetime import date, timedelta

from sparkhu.errors import ConfigError
from sparkhu.orchestrate.base import (
    AirflowTask,
    BuildContext,
    DagSpec,
    cron_of,
    dag_id,
    group_tasks,
    run_settings,
)

TASK_GROUPS: dict[str, tuple[str, ...]] = {
    # what the original's Spark tasks were grouped by: checks, gaps, anomalies, features
    "quality": ("validate", "dedup", "describe", "regularity"),
    "gaps": ("outliers", "missing", "impute"),
    "anomalies": ("decompose", "anomalies", "handle"),
    "features": ("normalize", "windows", "correlation"),
}
"""Task groups of the daily DAG; a task in none (a plug-in's) is a group of its own."""


def pipeline_dags(ctx: BuildContext) -> list[DagSpec]:
    """One DAG per dataset of ``ctx``: the daily DAG's tasks and edges (see the module docstring)."""
    from sparkhu.pipeline.daily import daily_dag

    settings = ctx.settings
    lookback = {name: timedelta(seconds=s) for name, s in settings.pipeline.lookback_s.items()}
    dag = daily_dag(lookback=lookback, exclude=settings.pipeline.exclude)
    specs = []
    for dataset in ctx.datasets:

        def argv(names: list[str], dataset: str = dataset) -> tuple[str, ...]:
            tasks = [arg for name in names for arg in ("--task", name)]
            return ("pipeline", "run", "--dataset", dataset, *tasks, "--only", "--day", "{day}")

        tasks: tuple[AirflowTask, ...] = tuple(
            AirflowTask(t.name, argv([t.name]), tuple(dag.upstream(t)), doc=t.fn.__doc__ or "")
            for t in dag.ordered()
        )
        if ctx.group_by == "task-group":
            tasks = group_tasks(tasks, TASK_GROUPS, argv)
        specs.append(
            DagSpec(
                dag_id(settings.airflow.dag_prefix, dataset, "pipeline"),
                cron_of(settings.pipeline.schedule),
                start_day(ctx, dataset),
                tasks,
                description=f"sparkhu's daily cleaning DAG over {dataset}: one run per finished UTC day",
                tags=("sparkhu", "pipeline", dataset),
                catchup=settings.airflow.catchup,
                **run_settings(settings),
            )
        )
    return specs


def start_day(ctx: BuildContext, dataset: str) -> date:
    """``[airflow] start_date``, else the first day of ``dataset`` in the lake (read now, at generation)."""
    if ctx.settings.airflow.start_date is not None:
        return date.fromisoformat(ctx.settings.airflow.start_date)
    from sparkhu.app.pipelines import daily

    first = daily(ctx.runtime, dataset).first_day()
    if first is None:
        raise ConfigError(
            f"dataset {dataset}: no data in the lake to start the DAGs from; ingest some, or set "
            "[airflow] start_date (or SPARKHU_AIRFLOW__START_DATE) to the first day to run"
        )
    return first
