"""The parent's side of chained execution: stages of a DAG, chunks out, results in, writes behind.

:func:`stages_of` cuts a DAG into stages: a *chain* of every per-series task whose upstream
is done (run together, per chunk of series, by :func:`~sparkhu.pipeline.chain.run_chain`),
then the ``scope="all"`` tasks that were waiting for it (a barrier, run in the parent), and
so on. :class:`ChainDriver` runs one chain over the intervals of a run: it reads every
dataset the chain needs once per interval (the longest look-back any of its tasks needs),
cuts the series into the engine's chunks, maps :func:`run_chain` over them, retries failed
series (only their failed tasks and what depends on them) with back-off, applies the
metadata, and hands each task's tables to the runner's writer thread, which replaces the
days, records the runs and writes the reports while the next stage computes.

>>> from sparkhu.pipeline import examples
>>> from sparkhu.pipeline.base import Task
>>> from sparkhu.pipeline.dag import Dag
>>> dag = Dag([
...     Task("a", examples.passthrough, {"points": "raw"}, {"points": "x"}),
...     Task("all", examples.mean_of_all, {"points": "x"}, {"means": "m"}, scope="all"),
...     Task("b", examples.passthrough, {"points": "x"}, {"points": "y"}),
... ])
>>> [(kind, [t.name for t in tasks]) for kind, tasks in stages_of(dag)]
[('chain', ['a', 'b']), ('all', ['all'])]
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.engine.base import CallFailure
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.chain import (
    ChainChunk,
    ChainResult,
    ChainSpec,
    SeriesResult,
    TaskRun,
    run_chain,
    unpack,
)
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT, Dag
from sparkhu.pipeline.datasets import assemble

if TYPE_CHECKING:
    from sparkhu.pipeline.runner import PipelineRunner

log = logging.getLogger(__name__)


def stages_of(dag: Dag) -> list[tuple[str, list[Task]]]:
    """``("chain", per-series tasks)`` and ``("all", scope-all tasks)`` stages in a runnable order."""
    stages: list[tuple[str, list[Task]]] = []
    done: set[str] = set()
    remaining = dag.ordered()
    while remaining:
        chain: list[Task] = []
        for task in remaining:
            ready = done | {t.name for t in chain}
            if task.scope == "series" and set(dag.upstream(task)) <= ready:
                chain.append(task)
        if chain:
            stages.append(("chain", chain))
        else:
            level = [t for t in remaining if set(dag.upstream(t)) <= done]
            stages.append(("all", level))
            chain = level
        done.update(t.name for t in chain)
        remaining = [t for t in remaining if t.name not in done]
    return stages


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
    """Runs one chain of per-series tasks of ``dag`` for ``runner``; see the module docstring."""

    def __init__(self, runner: PipelineRunner, dag: Dag, tasks: Sequence[Task]) -> None:
        self.runner = runner
        self.tasks = list(tasks)
        datasets = {d for t in tasks for d in [*t.inputs.values(), *t.outputs.values()]}
        self.spec = ChainSpec.of(
            tasks,
            upstream={t.name: tuple(dag.upstream(t)) for t in tasks},
            points={d: runner.datasets.spec(d).points for d in datasets},
        )

    def run(self, intervals: Sequence[tuple[datetime, datetime]]) -> list[TaskRun]:
        """Every task of the chain over every interval (in order: each sees the last one's writes)."""
        runs: list[TaskRun] = []
        for start, end in intervals:
            runs.extend(self._interval(start, end))
        return runs

    def _interval(self, start: datetime, end: datetime) -> list[TaskRun]:
        runner = self.runner
        started_at = datetime.now(UTC)
        attempt = 0
        while True:
            began = time.perf_counter()
            try:
                merged = self._compute(start, end)
                break
            except Exception as exc:
                reason = runner.failure(exc)
                log.warning(
                    "chain %s %s attempt %d failed: %s", self._names(), start.date(), attempt + 1, reason
                )
                if attempt >= runner.retries:
                    runs = []
                    for task in self.tasks:
                        run = TaskRun(task.name, start, end, "failed", attempt + 1, error=reason)
                        run.run_id, run.seconds = uuid.uuid4().hex, time.perf_counter() - began
                        runner.forget(task.outputs.values())
                        runner.finish(task, run, started_at)
                        runs.append(run)
                    return runs
                time.sleep(runner.backoff_s * 2**attempt)
                attempt += 1
        return [self._hand_over(task, merged, start, end, started_at, attempt + 1) for task in self.tasks]

    def _hand_over(
        self, task: Task, merged: _Merged, start: datetime, end: datetime, started_at: datetime, attempts: int
    ) -> TaskRun:
        """Fill the task's run, apply its metadata, keep its tables and queue their writes."""
        runner = self.runner
        run = TaskRun(task.name, start, end, attempts=attempts, run_id=uuid.uuid4().hex)
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
            runner.update_meta(merged.metadata[task.name], later=True)
        tables: dict[str, pa.Table] = {}
        if task.name not in merged.errors:
            for key, dataset in task.outputs.items():
                if key == QUARANTINE_OUTPUT:
                    continue
                table = _concat(merged.tables.get((task.name, key), []), runner.datasets.spec(dataset).points)
                tables[dataset] = table
                run.rows_out[dataset] = table.num_rows
                runner.keep(dataset, start, end, table)
        else:
            runner.forget(task.outputs.values())
        rejects = merged.rejects.get(task.name)
        frame = pd.concat(rejects, ignore_index=True) if rejects else None

        def write() -> None:
            began = time.perf_counter()
            days = runner.days_of(run)
            todo = dict(tables)
            quarantined = frame is None
            for attempt in range(runner.retries + 1):
                try:
                    for dataset in list(todo):
                        runner.datasets.replace(dataset, todo.pop(dataset), days)
                    if not quarantined:
                        runner.quarantine(task, frame)
                        quarantined = True
                    break
                except Exception as exc:
                    reason = runner.failure(exc)
                    log.warning(
                        "writing %s %s failed (attempt %d): %s", task.name, start.date(), attempt + 1, reason
                    )
                    if attempt >= runner.retries:
                        run.status, run.error = "failed", reason
                        break
                    time.sleep(runner.backoff_s * 2**attempt)
            run.seconds += time.perf_counter() - began
            runner.finish(task, run, started_at)

        runner.submit_write(tables, start, end, write)
        return run

    def _compute(self, start: datetime, end: datetime) -> _Merged:
        """Read once, map the chain over chunks of series, retry failed series; gather the results."""
        runner, spec = self.runner, self.spec
        need: dict[str, timedelta] = {}
        for task in self.tasks:
            for dataset in task.inputs.values():
                need[dataset] = max(need.get(dataset, timedelta(0)), task.lookback)
        reads: dict[str, pa.Table] = {}
        for dataset, lookback in need.items():
            if dataset not in spec.produced:
                reads[dataset] = runner.read(dataset, start - lookback, end)
            elif lookback > timedelta(0):  # history before the interval; the interval comes from the chain
                reads[dataset] = runner.read(dataset, start - lookback, start)
        bounds = {d: _bounds(t) for d, t in reads.items()}
        universe = sorted({str(n) for _, names, _ in bounds.values() for n in names})
        sizes = np.zeros(len(universe), dtype=np.int64)
        for _, names, offsets in bounds.values():
            if len(names):
                sizes[np.searchsorted(universe, names)] += np.diff(offsets)
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
        chunks: list[ChainChunk] = []
        rows: list[int] = []
        for lo, hi in runner.engine.split(sizes.tolist()):
            first, last = universe[lo], universe[hi - 1]
            tables = {}
            for dataset, (table, names, offsets) in bounds.items():
                a = int(np.searchsorted(names, first, side="left"))
                z = int(np.searchsorted(names, last, side="right"))
                tables[dataset] = table.slice(int(offsets[a]), int(offsets[z] - offsets[a]))
            chunks.append(ChainChunk.of(t0, t1, tables, runner.metas(universe[lo:hi])))
            rows.append(int(sizes[lo:hi].sum()))
        merged = _Merged()
        retry: list[ChainChunk] = []
        results = runner.engine.map_inputs(run_chain, chunks, {"spec": spec}, sizes=rows)
        attempt = 0
        while True:
            retry, retry_rows = [], []
            for chunk, n, result in zip(chunks, rows, results, strict=True):
                if isinstance(result, CallFailure):
                    retry.append(chunk)
                    retry_rows.append(n)
                    self._chunk_failed(merged, chunk, result.error, bounds)
                    continue
                merged.add(result)
                if result.pending:
                    retry.append(ChainChunk(t0, t1, {}, {}, result.pending, result.templates))
                    retry_rows.append(sum(len(f) for st in result.pending for f in st.frames.values()))
            if not retry or attempt >= runner.retries:
                return merged
            time.sleep(runner.backoff_s * 2**attempt)
            attempt += 1
            chunks, rows = retry, retry_rows
            results = runner.engine.map_inputs(run_chain, chunks, {"spec": spec}, sizes=rows)

    def _chunk_failed(
        self, merged: _Merged, chunk: ChainChunk, error: str, bounds: dict[str, tuple[pa.Table, Any, Any]]
    ) -> None:
        """A chunk whose call failed (its worker died): every task of its series failed."""
        if chunk.states is not None:
            ids = [s.series_id for s in chunk.states]
        else:
            ids = sorted({str(n) for b in chunk.tables.values() for n in _bounds(unpack(b))[1]})
        for task in self.tasks:
            for sid in ids:
                merged.series[(task.name, sid)] = SeriesResult(sid, "failed", error=error)

    def _names(self) -> str:
        return "+".join(t.name for t in self.tasks)


def _bounds(table: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """``table`` sorted by (series, ts), its series names (sorted) and their row offsets (n + 1)."""
    if table.num_rows == 0:
        return table, np.array([], dtype=str), np.zeros(1, dtype=np.int64)
    ids = table.column("series_id")
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids.cast(pa.string()))
    ids = ids.unify_dictionaries() if isinstance(ids, pa.ChunkedArray) else ids
    chunks = [c for c in (ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids])]
    names = np.asarray(chunks[0].dictionary.cast(pa.string()).to_pylist(), dtype=str)
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks]).astype(np.int64)
    order_names = np.argsort(names, kind="stable")
    rank = np.empty_like(order_names)
    rank[order_names] = np.arange(len(names))
    keys = rank[codes]
    if len(keys) > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        order = np.lexsort((ts, keys))
        keys = keys[order]
        table = table.take(pa.array(order))
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    offsets = np.r_[starts, len(keys)].astype(np.int64)
    return table, names[order_names][keys[starts]], offsets


def _concat(tables: list[pa.Table], points: bool) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return assemble([], points=points)
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")
