"""Run records of the pipeline in the catalog: the hook that writes them and the reads catch-up needs.

Per task-day, :class:`RunRecords` writes one record of kind ``pipeline`` named
``<dataset>/<task>`` (status, interval, rows, the task's parameters and look-back, attempts and
seconds) and, for a per-series task, one record of kind ``pipeline.series`` per series
(success/failed/skipped, rows in/out, error or skip reason), in one transaction
(:meth:`Catalog.record_runs <sparkhu.storage.catalog.Catalog.record_runs>`). A catalog error
is logged, not raised: the run goes on. :meth:`RunRecords.done_days` and
:meth:`RunRecords.last` read them back.

>>> import tempfile
>>> from datetime import UTC, date, datetime
>>> from sparkhu.pipeline import examples
>>> from sparkhu.pipeline.base import Task
>>> task = Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"})
>>> run = TaskRun("copy", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC), run_id="r1")
>>> with tempfile.TemporaryDirectory() as tmp:
...     catalog = Catalog(f"sqlite:///{tmp}/c.db")
...     records = RunRecords(catalog, "meters")
...     records.after_task_day(task, run)
...     done, name = records.done_days("copy"), records.last("copy").name
...     catalog.close()
>>> sorted(done), name
([datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)], 'meters/copy')
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from sparkhu.errors import SparkhuError
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT
from sparkhu.pipeline.hooks import PipelineHooks
from sparkhu.pipeline.runs import TaskRun, jsonable
from sparkhu.storage.catalog import Catalog, RunRecord

log = logging.getLogger(__name__)

RUN_KIND = "pipeline"
"""Kind of the task-day run records."""
SERIES_KIND = "pipeline.series"
"""Kind of the per-series run records."""


class RunRecords(PipelineHooks):
    """The run records of the tasks of source dataset ``dataset`` in ``catalog``."""

    def __init__(self, catalog: Catalog, dataset: str, where: Callable[[str], str] | None = None) -> None:
        self.catalog = catalog
        self.dataset = dataset
        self.where = where
        """The lake ``zone/dataset`` of a DAG dataset, recorded as the task's inputs and outputs (lineage)."""

    def name(self, task: str) -> str:
        """The ``name`` of a task's run records: ``<dataset>/<task>``."""
        return f"{self.dataset}/{task}"

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        """Record the task-day and, for a per-series task, each of its series (one transaction)."""
        finished = datetime.now(UTC)
        started = run.started_at or finished
        params = jsonable(
            {
                "dataset": self.dataset,
                "params": dict(task.params),
                "lookback_s": task.lookback.total_seconds(),
                **self.datasets_of(task),
            }
        )
        name = self.name(task.name)
        records = [
            RunRecord(
                run_id=run.run_id,
                kind=RUN_KIND,
                name=name,
                status=run.status,
                started_at=started,
                finished_at=finished,
                interval_start=run.start,
                interval_end=run.end,
                rows_in=run.rows_in,
                rows_out=sum(run.rows_out.values()),
                params={**params, "attempts": run.attempts, "seconds": round(run.seconds, 3)},
                error=run.error,
            )
        ]
        if task.scope == "series":
            records.extend(
                RunRecord(
                    run_id=f"{run.run_id}-{i}",
                    kind=SERIES_KIND,
                    name=name,
                    status=s.status,
                    started_at=started,
                    finished_at=finished,
                    series_id=s.series_id,
                    interval_start=run.start,
                    interval_end=run.end,
                    rows_in=s.rows_in,
                    rows_out=s.rows_out,
                    params=params,
                    error=s.error,
                )
                for i, s in enumerate(run.series)
            )
        try:
            self.catalog.record_runs(records)
        except SparkhuError as exc:
            log.error("cannot record the runs of %s %s: %s", task.name, run.start.date(), exc)

    def datasets_of(self, task: Task) -> dict[str, list[str]]:
        """The lake ``zone/dataset`` names ``task`` reads (``inputs``) and writes (``outputs``, not its
        quarantine); empty without ``where``."""
        if self.where is None:
            return {}
        return {
            "inputs": sorted({self.where(d) for d in task.inputs.values()}),
            "outputs": sorted({self.where(d) for key, d in task.outputs.items() if key != QUARANTINE_OUTPUT}),
        }

    def done_days(self, task: str) -> set[date]:
        """Days covered by a successful run of ``task``."""
        done: set[date] = set()
        for record in self.catalog.runs(kind=RUN_KIND, name=self.name(task), limit=100_000):
            if record.status != "success" or record.interval_start is None or record.interval_end is None:
                continue
            day = record.interval_start.astimezone(UTC).date()
            last = (record.interval_end.astimezone(UTC) - timedelta(microseconds=1)).date()
            while day <= last:
                done.add(day)
                day += timedelta(days=1)
        return done

    def last(self, task: str) -> RunRecord | None:
        """The newest task-day record of ``task`` (None if it never ran)."""
        records = self.catalog.runs(kind=RUN_KIND, name=self.name(task), limit=1)
        return records[0] if records else None
