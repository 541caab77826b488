"""The driver of a ``scope="all"`` task: every series at once, in this process, a barrier between chains.

:class:`AllSeriesDriver` runs one such task (``correlation`` in the daily DAG) over the
intervals of a run: it reads each input over ``[start - lookback, end)`` (from the run's kept
outputs where they cover it), calls the function with one frame per input holding every series
(a ``series_id`` column of plain strings), writes the rows of ``[start, end)`` of each output
(filed by their ``series_id``, or ``series_a`` for pairs), quarantines ``rejects`` and applies
the metadata (series id → fields). A task-day that raises is retried by the session's
:class:`~sparkhu.retrying.RetryPolicy`, then recorded as failed; the other tasks go on (its
downstream tasks read what is there).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import Task, TaskOutput
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT, written_frames
from sparkhu.pipeline.datasets import assemble, within
from sparkhu.pipeline.runs import SeriesResult, TaskRun, failure_reason
from sparkhu.pipeline.session import RunSession
from sparkhu.storage.writes import writing_run

log = logging.getLogger(__name__)


class AllSeriesDriver:
    """Runs the ``scope="all"`` task ``task`` in ``session``; see the module docstring."""

    def __init__(self, session: RunSession, task: Task) -> None:
        self.session = session
        self.task = task

    def run(self, intervals: Sequence[tuple[datetime, datetime]]) -> list[TaskRun]:
        """The task over every interval, in order."""
        runs = [self._task_day(start, end) for start, end in intervals]
        self.session.outputs.release(self.task)
        return runs

    def _task_day(self, start: datetime, end: datetime) -> TaskRun:
        session, task = self.session, self.task
        began = time.perf_counter()
        started_at = datetime.now(UTC)
        session.hooks.before_task_day(task, start, end)
        attempts: list[TaskRun] = []

        def once() -> None:
            run = TaskRun(task.name, start, end, attempts=len(attempts) + 1, run_id=uuid.uuid4().hex)
            attempts.append(run)
            with writing_run(run.run_id):
                self._compute(run)

        def failed(attempt: int, error: Exception) -> None:
            reason = failure_reason(error)
            log.warning("task %s %s attempt %d failed: %s", task.name, start.date(), attempt, reason)
            session.hooks.on_task_error(task, start, reason, attempt)

        tried = session.retry.call(once, on_failure=failed)
        run = attempts[-1]
        if tried.error is not None:
            run.status, run.error = "failed", failure_reason(tried.error)
            session.outputs.forget(written_frames(task))  # not all written: readers go to the lake
        run.seconds = time.perf_counter() - began
        run.started_at = started_at
        session.hooks.after_task_day(task, run)
        return run

    def _compute(self, run: TaskRun) -> None:
        """Read, call and write one interval."""
        session, task = self.session, self.task
        read_start = run.start - task.lookback
        tables = {name: session.outputs.read(d, read_start, run.end) for name, d in task.inputs.items()}
        run.rows_in = sum(t.num_rows for t in tables.values())
        output = self._call(tables)
        run.series = [SeriesResult("*", "success", run.rows_in, report=output.report)]
        for key, dataset in task.outputs.items():
            frame = output.frames.get(key)
            if key == QUARANTINE_OUTPUT:
                if frame is not None:
                    session.outputs.quarantine(task, frame.assign(series_id="*"))
                continue
            spec = session.datasets.spec(dataset)
            frame = frame if frame is not None else pd.DataFrame({"series_id": [], "ts": []})
            table = within(_table_of_all(task, frame, points=spec.points), run.start, run.end)
            session.datasets.replace(dataset, table, run.days)
            session.outputs.keep(dataset, run.start, run.end, table)
            run.rows_out[dataset] = table.num_rows
        updates = {sid: dict(f) for sid, f in output.metadata.items() if isinstance(f, Mapping)}
        if updates:
            session.metas.update(updates)

    def _call(self, tables: dict[str, pa.Table]) -> TaskOutput:
        task = self.task
        frames = {}
        for name, table in tables.items():
            if "series_id" in table.column_names:  # plain strings, not categories
                i = table.column_names.index("series_id")
                table = table.set_column(i, "series_id", table.column(i).cast(pa.string()))
            frames[name] = table.to_pandas()
        result = task.fn(frames, **dict(task.params))
        if not isinstance(result, TaskOutput):
            raise PipelineError(f"task {task.name!r} returned {type(result).__name__}, expected TaskOutput")
        return result


def _table_of_all(task: Task, frame: pd.DataFrame, *, points: bool) -> pa.Table:
    if (
        "series_id" not in frame.columns and "series_a" in frame.columns
    ):  # pairs: filed under their first series
        frame = frame.assign(series_id=frame["series_a"])
    if "series_id" not in frame.columns or "ts" not in frame.columns:
        raise PipelineError(
            f"task {task.name!r} (scope all) must return frames with series_id and ts columns"
        )
    parts = [(str(sid), f.drop(columns=["series_id"])) for sid, f in frame.groupby("series_id", sort=True)]
    return assemble(parts, points=points)
