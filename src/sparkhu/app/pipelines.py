"""The daily cleaning DAG bound to a runtime: what ``sparkhu pipeline``, the scheduler and the demo run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from sparkhu.app.runtime import Runtime

if TYPE_CHECKING:
    from sparkhu.pipeline.runner import PipelineRunner


def daily(
    runtime: Runtime,
    dataset: str | None = None,
    *,
    on_progress: Callable[[Any], None] | None = None,
    days_per_run: int = 1,
) -> PipelineRunner:
    """The runner of the 13-task DAG over ``dataset`` (see :meth:`Runtime.resolve_dataset`), with
    ``[pipeline]`` settings, reports under ``<home>/reports`` and the runtime's engine."""
    from sparkhu.pipeline.daily import daily_runner

    settings = runtime.settings
    return daily_runner(
        runtime.lake,
        runtime.catalog,
        runtime.engine,
        runtime.resolve_dataset(dataset),
        settings=settings.pipeline,
        home=settings.home,
        on_progress=on_progress,
        days_per_run=days_per_run,
    )


def rerun_task_day(runtime: Runtime, dataset: str, task: str, day: date) -> str:
    """Run one task of the DAG over ``dataset`` again for one day (not its downstream); its status.

    What the dashboard's runs grid asks for; an unknown task is an InputError from the runner.
    """
    summary = daily(runtime, dataset).run(day, day, tasks=[task], downstream=False)
    return summary.status
