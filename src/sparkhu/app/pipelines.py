"""The daily cleaning DAG bound to a runtime: what ``sparkhu pipeline``, the scheduler and the demo run."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sparkhu.app.metadata import JobRun, emitter, lake_dataset, send_job_events
from sparkhu.app.runtime import Runtime
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.hooks import PipelineHooks
from sparkhu.pipeline.runs import RunSummary, TaskRun

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
    runner = daily_runner(
        runtime.lake,
        runtime.catalog,
        runtime.engine,
        runtime.resolve_dataset(dataset),
        settings=settings.pipeline,
        home=settings.home,
        on_progress=on_progress,
        days_per_run=days_per_run,
    )
    if emitter(runtime).enabled:  # [metadata] openlineage: each task-day's events, sent after the run
        runner.hooks.hooks.append(LineageHook(runtime, runner))
    return runner


class LineageHook(PipelineHooks):
    """Gathers the OpenLineage events of each task-day of ``runner`` (START at its start, COMPLETE or
    FAIL at its end, with the lake datasets it read and wrote) and sends them when the run ends."""

    def __init__(self, runtime: Runtime, runner: PipelineRunner) -> None:
        self.runtime, self.runner = runtime, runner
        self.runs: list[JobRun] = []

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        datasets = self.runner.records.datasets_of(task)
        self.runs.append(
            JobRun(
                self.runner.records.name(task.name),
                run.run_id,
                [lake_dataset(self.runtime, d) for d in datasets.get("inputs", [])],
                [lake_dataset(self.runtime, d) for d in datasets.get("outputs", [])],
                started_at=run.started_at or datetime.now(UTC),
                finished_at=datetime.now(UTC),
                status="failed" if run.status == "failed" else "success",
                detail={
                    "interval_start": run.start.isoformat(),
                    "interval_end": run.end.isoformat(),
                    "rows_in": run.rows_in,
                    "rows_out": sum(run.rows_out.values()),
                    "error": run.error,
                },
            )
        )

    def after_run(self, summary: RunSummary) -> None:
        runs, self.runs = self.runs, []
        send_job_events(self.runtime, runs, f"the pipeline run of {self.runner.dataset}")


def days_in(runtime: Runtime, zone: str, dataset: str) -> list[date]:
    """The UTC days of ``zone/dataset`` that hold data files, oldest first (none for a missing dataset).

    >>> import tempfile
    >>> from sparkhu.config import Settings
    >>> with tempfile.TemporaryDirectory() as home:
    ...     with Runtime(Settings.load(toml_path=None, env={}, overrides={"home": home})) as runtime:
    ...         days_in(runtime, "raw", "nothing_here")
    []
    """
    if (zone, dataset) not in runtime.lake.datasets(zone):
        return []
    keys = runtime.lake.partition_keys(zone, dataset)  # a listing: no file is opened
    days = {date(*(int(x) for x in re.findall(r"\d+", key)[:3])) for key in keys}
    return sorted(days)


def stale_days(runtime: Runtime, dataset: str, *, today: date | None = None) -> list[date]:
    """Days of raw points newer than the clean zone's newest day: what ``train`` and ``predict`` would
    not see in the clean zone until the pipeline has run for them (empty when nothing was cleaned yet).
    Today (UTC) is not counted: the daily pipeline cleans a day once it is over."""
    clean = days_in(runtime, "clean", dataset)
    if not clean:
        return []
    today = datetime.now(UTC).date() if today is None else today
    return [d for d in days_in(runtime, "raw", dataset) if clean[-1] < d < today]


def rerun_task_day(runtime: Runtime, dataset: str, task: str, day: date) -> str:
    """Run one task of the DAG over ``dataset`` again for one day (not its downstream); its status.

    What the dashboard's runs grid asks for; an unknown task is an InputError from the runner.
    """
    summary = daily(runtime, dataset).run(day, day, tasks=[task], downstream=False)
    return summary.status
