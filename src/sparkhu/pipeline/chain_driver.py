"""The driver's side of chained execution: chunks of series out to workers, results in, writes behind.

A *chain* is a stage of per-series tasks (:meth:`Dag.stages <sparkhu.pipeline.dag.Dag.stages>`)
run together per chunk of series by :func:`~sparkhu.pipeline.chain_worker.run_chain`.
:class:`ChainDriver` runs one chain over the intervals of a run. Per interval it reads every
dataset the chain needs once (over the longest look-back any of its tasks needs), cuts the
series into the engine's chunks, maps :func:`run_chain` over them, retries failed series
(only their failed tasks and what depends on them), applies the metadata, keeps the outputs
later stages read and hands each task's tables to the writer threads, which replace the days
and then tell the hooks (run records, reports) while the next stage computes. A chain interval
that raises (a read, the engine) is retried as a whole, and so is a failed write; every retry
follows the session's :class:`~sparkhu.retrying.RetryPolicy`.
"""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkhu.engine.base import CallFailure
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.chain_worker import ChainChunk, ChainResult, ChainSpec, run_chain, unpack
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT, Dag, written_frames
from sparkhu.pipeline.datasets import assemble
from sparkhu.pipeline.runs import SeriesResult, TaskRun, failure_reason
from sparkhu.pipeline.session import RunSession
from sparkhu.series import series_runs
from sparkhu.storage.writes import writing_run

log = logging.getLogger(__name__)


@dataclass
class _Merged:
    """The chunks' results of one chain interval, gathered."""

    series: dict[tuple[str, str], SeriesResult] = field(default_factory=dict)
    tables: dict[tuple[str, str], list[pa.Table]] = field(default_factory=dict)
    rejects: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    metadata: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rows_in: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, result: ChainResult) -> None:
        for task, results in result.series.items():
            for res in results:
                self.series[(task, res.series_id)] = res
        for key, table in result.tables.items():
            self.tables.setdefault(key, []).append(table)
        for task, frame in result.rejects.items():
            self.rejects.setdefault(task, []).append(frame)
        for task, meta in result.metadata.items():
            self.metadata.setdefault(task, {}).update(meta)
        for task, seconds in result.seconds.items():
            self.seconds[task] = self.seconds.get(task, 0.0) + seconds
        for task, rows in result.rows_in.items():
            self.rows_in[task] = self.rows_in.get(task, 0) + rows
        self.errors.update(result.errors)


class ChainDriver:
    """Runs the per-series tasks ``tasks`` (one chain of ``dag``) in ``session``; see the module docstring."""

    def __init__(self, session: RunSession, dag: Dag, tasks: Sequence[Task]) -> None:
        self.session = session
        self.tasks = list(tasks)
        datasets = {d for t in tasks for d in [*t.inputs.values(), *t.outputs.values()]}
        self.spec = ChainSpec.of(
            tasks,
            upstream={t.name: tuple(dag.upstream(t)) for t in tasks},
            points={d: session.datasets.spec(d).points for d in datasets},
        )

    def run(self, intervals: Sequence[tuple[datetime, datetime]]) -> list[TaskRun]:
        """Every task of the chain over every interval (in order: each sees the last one's writes)."""
        runs: list[TaskRun] = []
        for start, end in intervals:
            runs.extend(self._interval(start, end))
        for task in self.tasks:
            self.session.outputs.release(task)
        return runs

    def _interval(self, start: datetime, end: datetime) -> list[TaskRun]:
        session = self.session
        started_at = datetime.now(UTC)
        for task in self.tasks:
            session.hooks.before_task_day(task, start, end)
        began = time.perf_counter()

        def compute() -> _Merged:
            nonlocal began
            began = time.perf_counter()
            return self._compute(start, end)

        def failed(attempt: int, error: Exception) -> None:
            reason = failure_reason(error)
            log.warning("chain %s %s attempt %d failed: %s", self._names(), start.date(), attempt, reason)
            for task in self.tasks:
                session.hooks.on_task_error(task, start, reason, attempt)

        tried = session.retry.call(compute, on_failure=failed)
        if tried.error is not None:
            reason = failure_reason(tried.error)
            runs = []
            for task in self.tasks:
                run = TaskRun(task.name, start, end, "failed", tried.attempts, error=reason)
                run.run_id, run.seconds = uuid.uuid4().hex, time.perf_counter() - began
                run.started_at = started_at
                session.outputs.forget(written_frames(task))
                session.hooks.after_task_day(task, run)
                runs.append(run)
            return runs
        merged = tried.value
        assert merged is not None  # a call that did not fail returned its value
        return [self._hand_over(task, merged, start, end, started_at, tried.attempts) for task in self.tasks]

    def _hand_over(
        self, task: Task, merged: _Merged, start: datetime, end: datetime, started_at: datetime, attempts: int
    ) -> TaskRun:
        """Fill the task's run, apply its metadata, keep its tables for later stages, queue their writes."""
        session = self.session
        run = TaskRun(
            task.name, start, end, attempts=attempts, run_id=uuid.uuid4().hex, started_at=started_at
        )
        run.series = sorted(
            (r for (name, _), r in merged.series.items() if name == task.name), key=lambda r: r.series_id
        )
        run.rows_in = merged.rows_in.get(task.name, 0)
        run.seconds = run.cpu_seconds = merged.seconds.get(task.name, 0.0)
        if any(s.status == "failed" for s in run.series):
            run.status = "failed"
            first = next(s for s in run.series if s.status == "failed")
            run.error = f"{run.count('failed')} series failed; first {first.series_id}: {first.error}"
        if task.name in merged.errors:
            run.status, run.error = "failed", merged.errors[task.name]
        if merged.metadata.get(task.name):
            session.metas.update(merged.metadata[task.name], later=True)
        tables: dict[str, pa.Table] = {}
        if task.name not in merged.errors:
            for key, dataset in task.outputs.items():
                if key == QUARANTINE_OUTPUT:
                    continue
                table = _concat(
                    merged.tables.get((task.name, key), []), session.datasets.spec(dataset).points
                )
                tables[dataset] = table
                run.rows_out[dataset] = table.num_rows
                session.outputs.keep(dataset, start, end, table)
        else:
            session.outputs.forget(written_frames(task))
        rejects = merged.rejects.get(task.name)
        self._write_behind(task, run, tables, pd.concat(rejects, ignore_index=True) if rejects else None)
        return run

    def _write_behind(
        self, task: Task, run: TaskRun, tables: dict[str, pa.Table], rejects: pd.DataFrame | None
    ) -> None:
        """Queue the writes of a task-day (its tables, then its rejects), retried as one, then its hooks."""
        session = self.session
        todo = dict(tables)
        quarantined = False

        def write_once() -> None:
            with writing_run(run.run_id):
                write_tables()

        def write_tables() -> None:
            nonlocal quarantined
            for dataset in list(todo):  # what an earlier attempt wrote is not written again
                session.datasets.replace(dataset, todo[dataset], run.days)
                del todo[dataset]
            if rejects is not None and not quarantined:
                session.outputs.quarantine(task, rejects)
                quarantined = True

        def failed(attempt: int, error: Exception) -> None:
            reason = failure_reason(error)
            log.warning("writing %s %s failed (attempt %d): %s", task.name, run.start.date(), attempt, reason)
            session.hooks.on_task_error(task, run.start, reason, attempt)

        def write() -> None:
            began = time.perf_counter()
            tried = session.retry.call(write_once, on_failure=failed)
            if tried.error is not None:
                run.status, run.error = "failed", failure_reason(tried.error)
            run.seconds += time.perf_counter() - began
            session.hooks.after_task_day(task, run)

        session.outputs.write_behind(tables, run.start, run.end, write)

    def _compute(self, start: datetime, end: datetime) -> _Merged:
        """Read once, map the chain over chunks of series, retry failed series; gather the results."""
        session, spec = self.session, self.spec
        need: dict[str, timedelta] = {}
        for task in self.tasks:
            for dataset in task.inputs.values():
                need[dataset] = max(need.get(dataset, timedelta(0)), task.lookback)
        reads: dict[str, pa.Table] = {}
        for dataset, lookback in need.items():
            if dataset not in spec.produced:
                reads[dataset] = session.outputs.read(dataset, start - lookback, end)
            elif lookback > timedelta(0):  # history before the interval; the interval comes from the chain
                reads[dataset] = session.outputs.read(dataset, start - lookback, start)
        runs = {d: series_runs(t) for d, t in reads.items()}
        universe = sorted({name for r in runs.values() for name in r.names})
        sizes = np.zeros(len(universe), dtype=np.int64)
        for r in runs.values():
            if r.names:
                sizes[np.searchsorted(universe, r.names)] += r.sizes()
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
        chunks: list[ChainChunk] = []
        rows: list[int] = []
        for lo, hi in session.engine.split(sizes.tolist()):
            first, last = universe[lo], universe[hi - 1]
            tables = {}
            for dataset, (table, names, offsets) in runs.items():
                a = bisect.bisect_left(names, first)
                z = bisect.bisect_right(names, last)
                tables[dataset] = table.slice(int(offsets[a]), int(offsets[z] - offsets[a]))
            chunks.append(ChainChunk.of(t0, t1, tables, session.metas.of(universe[lo:hi])))
            rows.append(int(sizes[lo:hi].sum()))
        merged = _Merged()

        def map_chunks() -> bool:
            """Map the chain over ``chunks``; keep the failed series as the next ``chunks``."""
            nonlocal chunks, rows
            results = session.engine.map_inputs(run_chain, chunks, {"spec": spec}, sizes=rows)
            retry: list[ChainChunk] = []
            retry_rows: list[int] = []
            for chunk, n, result in zip(chunks, rows, results, strict=True):
                if isinstance(result, CallFailure):
                    retry.append(chunk)
                    retry_rows.append(n)
                    self._chunk_failed(merged, chunk, result.error)
                    continue
                merged.add(result)
                if result.pending:
                    retry.append(ChainChunk(t0, t1, {}, {}, result.pending, result.templates))
                    retry_rows.append(sum(len(f) for st in result.pending for f in st.frames.values()))
            chunks, rows = retry, retry_rows
            return bool(retry)

        session.retry.repeat(map_chunks)
        return merged

    def _chunk_failed(self, merged: _Merged, chunk: ChainChunk, error: str) -> None:
        """A chunk whose call failed (its worker died): every task of its series failed."""
        if chunk.states is not None:
            ids = [s.series_id for s in chunk.states]
        else:
            ids = sorted({name for b in chunk.tables.values() for name in series_runs(unpack(b)).names})
        for task in self.tasks:
            for sid in ids:
                merged.series[(task.name, sid)] = SeriesResult(sid, "failed", error=error)

    def _names(self) -> str:
        return "+".join(t.name for t in self.tasks)


def _concat(tables: list[pa.Table], points: bool) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return assemble([], points=points)
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")
