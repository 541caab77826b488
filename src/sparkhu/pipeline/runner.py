"""The DAG runner: tasks bound to the lake, mapped over series by an engine, recorded in the catalog.

:meth:`PipelineRunner.run` cuts the DAG into stages (:func:`~sparkhu.pipeline.chained.stages_of`):
a *chain* of every per-series task whose upstream is done, then the ``scope="all"`` tasks
waiting for it, and so on. For each interval of days, a chain
(:class:`~sparkhu.pipeline.chained.ChainDriver`):

1. reads each dataset it needs once, over the longest look-back of its tasks (datasets it
   produces itself only before the interval: the interval comes from the chain);
2. cuts the series into the engine's chunks (:meth:`Engine.split`) and maps
   :func:`~sparkhu.pipeline.chain.run_chain` over them (:meth:`Engine.map_inputs`): a worker
   runs every task for its series in topological order, each task seeing its own look-back,
   skipping series with fewer than ``min_points`` points (reason recorded); a series failing
   in a task is retried (just that task and its downstream) with exponential back-off, and its
   downstream tasks are skipped for it with the reason;
3. records series metadata, keeps the outputs a later stage reads in memory and hands each
   task's tables (rows with ``start <= ts < end``) to writer threads, which replace those days
   of each output dataset (re-runs are idempotent), quarantine ``rejects``, write one run
   record for the task-day and one per series (one transaction) and a JSON + HTML report.

A ``scope="all"`` task-day runs in this process; one that raises is retried the same way,
then recorded as failed; the other tasks go on (its downstream tasks read what is there).

>>> import tempfile
>>> from sparkhu.engine.local import LocalEngine
>>> from sparkhu.pipeline import examples
>>> from sparkhu.pipeline.base import Task
>>> from sparkhu.pipeline.dag import Dag
>>> from sparkhu.series import points
>>> from sparkhu.storage.catalog import Catalog
>>> from sparkhu.storage.lake import Lake
>>> dag = Dag([Task("double", examples.scale, {"points": "raw"}, {"points": "doubled"}, min_points=1)])
>>> with tempfile.TemporaryDirectory() as tmp:
...     lake, catalog = Lake(tmp + "/lake"), Catalog(f"sqlite:///{tmp}/c.db")
...     _ = lake.write("raw", "m", points("a/b/c", [0, 60_000_000], [1.0, 2.0]))
...     runner = PipelineRunner(lake, catalog, LocalEngine(1), dag, dataset="m")
...     summary = runner.run(date(1970, 1, 1), date(1970, 1, 1))
...     values = lake.read_table("analysis", "m.doubled")["value"].to_pylist()
...     catalog.close()
>>> summary.status, values
('success', [2.0, 4.0])
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkhu.engine.base import Engine
from sparkhu.errors import PipelineError, SparkhuError
from sparkhu.pipeline.base import SeriesMeta, Task, TaskOutput
from sparkhu.pipeline.chain import SeriesResult, TaskRun, apply_metadata
from sparkhu.pipeline.chained import ChainDriver, stages_of
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT, Dag
from sparkhu.pipeline.datasets import Datasets, assemble, within
from sparkhu.pipeline.reports import write_report
from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake

log = logging.getLogger(__name__)

RUN_KIND = "pipeline"
"""Kind of the task-day run records; per-series records are ``pipeline.series``."""
SERIES_KIND = "pipeline.series"


@dataclass(frozen=True)
class PlanStep:
    """One task-interval of a run's plan: which datasets it reads (with look-back) and writes."""

    level: int
    task: str
    start: datetime
    end: datetime
    reads: tuple[tuple[str, str, datetime], ...]  # (dataset, zone/lake name, read start)
    writes: tuple[tuple[str, str], ...]  # (dataset, zone/lake name)


@dataclass
class RunSummary:
    """What :meth:`PipelineRunner.run` did (or, dry, would do)."""

    dataset: str
    plan: list[PlanStep]
    runs: list[TaskRun] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """``success`` when every task-day succeeded (``planned`` for a dry run)."""
        if self.dry_run:
            return "planned"
        return "success" if all(r.status == "success" for r in self.runs) else "failed"


class PipelineRunner:
    """Runs a :class:`~sparkhu.pipeline.dag.Dag` over days of one source dataset.

    ``retries``: extra attempts of a failed task-day (and of failed series) with a back-off
    of ``backoff_s · 2^attempt``; ``report_dir``: where reports go (None: none written);
    ``days_per_run``: days per task-interval (1 = daily records; more = fewer, larger
    batches for back-fills); ``threads``: tasks of a level run at once (0: all of them);
    ``on_progress`` is called with each finished :class:`TaskRun`.
    """

    def __init__(
        self,
        lake: Lake,
        catalog: Catalog,
        engine: Engine,
        dag: Dag,
        *,
        dataset: str,
        retries: int = 2,
        backoff_s: float = 0.5,
        report_dir: str | Path | None = None,
        days_per_run: int = 1,
        threads: int = 0,
        datasets: Datasets | None = None,
        on_progress: Callable[[TaskRun], None] | None = None,
        max_cache_rows: int = 100_000_000,
    ) -> None:
        if not isinstance(retries, int) or retries < 0:
            raise PipelineError(f"retries must be an integer >= 0, got {retries!r}")
        if not backoff_s >= 0:
            raise PipelineError(f"backoff_s must be >= 0 seconds, got {backoff_s!r}")
        if not isinstance(days_per_run, int) or days_per_run < 1:
            raise PipelineError(f"days_per_run must be an integer >= 1, got {days_per_run!r}")
        self.lake = lake
        self.catalog = catalog
        self.engine = engine
        self.dag = dag
        self.dataset = dataset
        self.retries = retries
        self.backoff_s = backoff_s
        self.report_dir = Path(report_dir) if report_dir is not None else None
        self.days_per_run = days_per_run
        self.threads = threads
        self.datasets = datasets or Datasets(lake, dataset)
        self.on_progress = on_progress
        self._meta: dict[str, SeriesMeta] = {}
        self.max_cache_rows = max_cache_rows
        self._cache: dict[str, list[tuple[datetime, datetime, pa.Table]]] = {}
        self._readers: dict[str, int] = {}
        self._counted: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._finishing = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._writes: dict[str, list[tuple[datetime, datetime, Future[Any]]]] = {}

    # ------------------------------------------------------------------ public

    def plan(self, start_day: date, end_day: date, *, tasks: Sequence[str] | None = None) -> list[PlanStep]:
        """The task-intervals a run of days ``start_day``..``end_day`` (inclusive) would execute."""
        dag = self.dag.subset(tasks) if tasks else self.dag
        steps = []
        for level_no, level in enumerate(dag.levels):
            for task in level:
                for start, end in self._intervals(start_day, end_day):
                    reads = tuple(
                        (d, self._where(d), start - task.lookback)
                        for d in dict.fromkeys(task.inputs.values())
                    )
                    writes = tuple(
                        (d, "quarantine/" + self.dataset if k == QUARANTINE_OUTPUT else self._where(d))
                        for k, d in task.outputs.items()
                    )
                    steps.append(PlanStep(level_no, task.name, start, end, reads, writes))
        return steps

    def run(
        self,
        start_day: date,
        end_day: date,
        *,
        tasks: Sequence[str] | None = None,
        dry_run: bool = False,
    ) -> RunSummary:
        """Run the DAG (or ``tasks`` and their downstream) for days ``start_day``..``end_day`` inclusive.

        ``dry_run`` returns the plan and touches nothing (no read, no write, no record).
        """
        start_day, end_day = _day(start_day, "start_day"), _day(end_day, "end_day")
        if end_day < start_day:
            raise PipelineError(f"end day {end_day} is before start day {start_day}")
        plan = self.plan(start_day, end_day, tasks=tasks)
        summary = RunSummary(self.dataset, plan, dry_run=dry_run)
        if dry_run:
            return summary
        began = time.perf_counter()
        dag = self.dag.subset(tasks) if tasks else self.dag
        self._load_meta()
        stages = stages_of(dag)
        stage_of = {t.name: i for i, (_, level) in enumerate(stages) for t in level}
        with self._lock:
            self._cache.clear()
            self._readers = {}
            self._counted = {}
            for task in dag.tasks:  # readers in a later stage: a chain hands over in memory
                self._counted[task.name] = {
                    d
                    for d in task.inputs.values()
                    if d in dag.producer and stage_of[dag.producer[d]] != stage_of[task.name]
                }
                for d in self._counted[task.name]:
                    self._readers[d] = self._readers.get(d, 0) + 1
        intervals = self._intervals(start_day, end_day)
        runs: list[TaskRun] = []
        self._writer = ThreadPoolExecutor(2, thread_name_prefix="pipeline-write")
        self._writes = {}
        try:
            for kind, level in stages:
                if kind == "chain":
                    runs.extend(ChainDriver(self, dag, level).run(intervals))
                    for task in level:
                        self._release(task)
                    continue
                width = len(level) if self.threads <= 0 else min(self.threads, len(level))
                if width <= 1:
                    for task in level:
                        runs.extend(self._run_task(task, intervals))
                else:
                    with ThreadPoolExecutor(width, thread_name_prefix="pipeline") as pool:
                        for done in pool.map(lambda t: self._run_task(t, intervals), level):
                            runs.extend(done)
        finally:
            self._writer.shutdown(wait=True)
        order = {t.name: i for i, t in enumerate(dag.ordered())}
        summary.runs.extend(sorted(runs, key=lambda r: (order[r.task], r.start)))
        summary.seconds = time.perf_counter() - began
        return summary

    def missing_days(self, until_day: date, *, since: date | None = None) -> list[date]:
        """Days from ``since`` (default: the first day of the source data) to ``until_day`` on
        which some task of the DAG has no successful run."""
        until_day = _day(until_day, "until_day")
        first = since if since is not None else self.first_day()
        if first is None or first > until_day:
            return []
        days = [first + timedelta(days=i) for i in range((until_day - first).days + 1)]
        missing: set[date] = set()
        for task in self.dag.tasks:
            done = self.done_days(task.name)
            missing.update(d for d in days if d not in done)
        return sorted(missing)

    def run_missing(self, until_day: date, *, since: date | None = None) -> RunSummary:
        """Catch up: run the whole DAG on every day up to ``until_day`` missing a successful run."""
        days = self.missing_days(until_day, since=since)
        total = RunSummary(self.dataset, [])
        began = time.perf_counter()
        for first, last in _runs_of_days(days):
            part = self.run(first, last)
            total.plan.extend(part.plan)
            total.runs.extend(part.runs)
        total.seconds = time.perf_counter() - began
        return total

    def done_days(self, task: str) -> set[date]:
        """Days covered by a successful run of ``task`` on this dataset."""
        done: set[date] = set()
        for record in self.catalog.runs(kind=RUN_KIND, name=self.record_name(task), limit=100_000):
            if record.status != "success" or record.interval_start is None or record.interval_end is None:
                continue
            day = record.interval_start.astimezone(UTC).date()
            last = (record.interval_end.astimezone(UTC) - timedelta(microseconds=1)).date()
            while day <= last:
                done.add(day)
                day += timedelta(days=1)
        return done

    def last_runs(self) -> dict[str, RunRecord]:
        """The newest task-day record of each task of the DAG (absent if it never ran)."""
        out = {}
        for task in self.dag.tasks:
            records = self.catalog.runs(kind=RUN_KIND, name=self.record_name(task.name), limit=1)
            if records:
                out[task.name] = records[0]
        return out

    def first_day(self) -> date | None:
        """The first UTC day of the source dataset in the lake (None when it is empty)."""
        for source in self.dag.sources:
            spec = self.datasets.spec(source)
            parts = self.lake.partitions(spec.zone, spec.name)
            if parts:
                y, m, d = (int(x) for x in re.findall(r"\d+", parts[0].key)[:3])
                return date(y, m, d)
        return None

    def record_name(self, task: str) -> str:
        """The ``name`` of a task's run records: ``<dataset>/<task>``."""
        return f"{self.dataset}/{task}"

    # ------------------------------------------------------------------ one task

    def _run_task(self, task: Task, intervals: list[tuple[datetime, datetime]]) -> list[TaskRun]:
        runs = []
        for start, end in intervals:
            runs.append(self._attempts(task, start, end))
        self._release(task)
        return runs

    def _release(self, task: Task) -> None:
        with self._lock:  # a dataset no task is left to read leaves the cache
            for dataset in self._counted.get(task.name, ()):
                if dataset in self._readers:
                    self._readers[dataset] -= 1
                    if self._readers[dataset] <= 0:
                        self._cache.pop(dataset, None)

    # ------------------------------------------------------------------ hand-off between tasks

    def keep(self, dataset: str, start: datetime, end: datetime, table: pa.Table) -> None:
        """Keep what a task just wrote for the tasks of this run that read it (bounded in rows)."""
        with self._lock:
            if self._readers.get(dataset, 0) <= 0:
                return
            pieces = self._cache.setdefault(dataset, [])
            if pieces and pieces[-1][1] != start:
                self._cache.pop(dataset)  # not contiguous: read from the lake
                self._readers.pop(dataset)
                return
            pieces.append((start, end, table))
            if sum(t.num_rows for _, _, t in pieces) > self.max_cache_rows:
                self._cache.pop(dataset)
                self._readers.pop(dataset)

    def read(self, dataset: str, start: datetime, end: datetime) -> pa.Table:
        """``[start, end)`` of ``dataset``: from this run's outputs where they cover it, else the lake."""
        with self._lock:
            pieces = list(self._cache.get(dataset, ()))
        if not pieces or end > pieces[-1][1] or end <= pieces[0][0]:
            self._await_writes(dataset, start, end)
            return self.datasets.read(dataset, start, end)
        first = pieces[0][0]
        parts = [t for s, e, t in pieces if e > start and s < end]
        cached = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
        if pieces[0][0] > start or pieces[-1][1] < end or len(parts) != len(pieces):
            cached = within(cached, max(start, first), end)
        if start < first:
            self._await_writes(dataset, start, first)
            older = self.datasets.read(dataset, start, first)
            if older.num_rows:
                older = older.cast(cached.schema) if older.schema != cached.schema else older
                cached = pa.concat_tables([older, cached], promote_options="permissive")
        return cached

    def _await_writes(self, dataset: str, start: datetime, end: datetime) -> None:
        """Wait for this run's pending writes of days of ``dataset`` in ``[start, end)``."""
        with self._lock:
            pending = [f for s, e, f in self._writes.get(dataset, ()) if s < end and e > start]
        for future in pending:
            future.result()

    def _attempts(self, task: Task, start: datetime, end: datetime) -> TaskRun:
        began = time.perf_counter()
        started_at = datetime.now(UTC)
        attempt = 0
        while True:
            run = TaskRun(task.name, start, end, attempts=attempt + 1, run_id=uuid.uuid4().hex)
            try:
                self._run_interval(task, run)
                break
            except Exception as exc:
                reason = self.failure(exc)
                log.warning("task %s %s attempt %d failed: %s", task.name, start.date(), attempt + 1, reason)
                if attempt >= self.retries:
                    run.status, run.error = "failed", reason
                    self.forget(task.outputs.values())  # not all written: readers go to the lake
                    break
                time.sleep(self.backoff_s * 2**attempt)
                attempt += 1
        run.seconds = time.perf_counter() - began
        self.finish(task, run, started_at)
        return run

    def finish(self, task: Task, run: TaskRun, started_at: datetime) -> None:
        """Record a finished task-interval, write its report and tell ``on_progress``.

        One at a time (writer threads finish tasks concurrently; a day's index is rewritten).
        """
        with self._finishing:
            self.record(task, run, started_at)
            if self.report_dir is not None:
                try:
                    run.reports = write_report(self.report_dir, self.dataset, task, run)
                except OSError as exc:
                    log.warning("cannot write the report of %s %s: %s", task.name, run.start.date(), exc)
            if self.on_progress is not None:
                self.on_progress(run)

    def failure(self, exc: BaseException) -> str:
        """The message recorded for an exception that failed a task-interval."""
        return str(exc) if isinstance(exc, SparkhuError) else f"{type(exc).__name__}: {exc}"

    def forget(self, datasets: Iterable[str]) -> None:
        """Drop ``datasets`` from this run's hand-over (their readers go to the lake)."""
        with self._lock:
            for dataset in datasets:
                self._cache.pop(dataset, None)
                self._readers.pop(dataset, None)

    def submit_write(
        self, datasets: Iterable[str], start: datetime, end: datetime, job: Callable[[], Any]
    ) -> Future[Any]:
        """Run ``job`` (writing days ``[start, end)`` of ``datasets``) on the writer threads;
        reads of those days wait for it (reads the hand-over covers do not)."""
        assert self._writer is not None, "writes are submitted during run()"
        future = self._writer.submit(job)
        with self._lock:
            for dataset in datasets:
                self._writes.setdefault(dataset, []).append((start, end, future))
        return future

    def _run_interval(self, task: Task, run: TaskRun) -> None:
        """One interval of a ``scope="all"`` task (per-series tasks run in chains)."""
        read_start = run.start - task.lookback
        tables = {name: self.read(d, read_start, run.end) for name, d in task.inputs.items()}
        run.rows_in = sum(t.num_rows for t in tables.values())
        output = self._call_all(task, tables)
        run.series = [SeriesResult("*", "success", run.rows_in, report=output.report)]
        self._write(task, run, output)

    def _call_all(self, task: Task, tables: dict[str, pa.Table]) -> TaskOutput:
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

    def _write(self, task: Task, run: TaskRun, output: TaskOutput) -> None:
        days = self.days_of(run)
        for key, dataset in task.outputs.items():
            frame = output.frames.get(key)
            if key == QUARANTINE_OUTPUT:
                if frame is not None:
                    self.quarantine(task, frame.assign(series_id="*"))
                continue
            spec = self.datasets.spec(dataset)
            frame = frame if frame is not None else pd.DataFrame({"series_id": [], "ts": []})
            table = within(_table_of_all(task, frame, points=spec.points), run.start, run.end)
            self.datasets.replace(dataset, table, days)
            self.keep(dataset, run.start, run.end, table)
            run.rows_out[dataset] = table.num_rows
        updates = {sid: dict(f) for sid, f in output.metadata.items() if isinstance(f, Mapping)}
        if updates:  # metadata of a scope-all task: series id → fields
            self.update_meta(updates)

    def days_of(self, run: TaskRun) -> list[date]:
        """The UTC days of a task-interval."""
        return [run.start.date() + timedelta(days=i) for i in range((run.end - run.start).days)]

    def quarantine(self, task: Task, frame: pd.DataFrame) -> None:
        """Write a task's ``rejects`` (with a ``series_id`` column) to the lake's quarantine."""
        if not len(frame):
            return
        ts = pd.to_datetime(frame["ts"], utc=True) if "ts" in frame else None
        reason = (
            frame["reason"].astype(str) if "reason" in frame else pd.Series("rejected", index=frame.index)
        )
        location = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if ts is not None else None
        records = pa.table(
            {
                "source": ("pipeline:" + task.name + ":" + frame["series_id"]).tolist(),
                "location": None if location is None else location.tolist(),
                "field": frame["field"].astype(str).tolist() if "field" in frame else None,
                "reason": reason.tolist(),
                "raw": frame["value"].astype(str).tolist() if "value" in frame else None,
            }
        )
        self.lake.write_quarantine(self.dataset, records)

    # ------------------------------------------------------------------ metadata and records

    def _load_meta(self) -> None:
        infos = self.catalog.list_series(limit=10_000_000)
        with self._lock:
            self._meta = {
                i.series_id: SeriesMeta(
                    i.series_id,
                    i.unit,
                    i.period_s,
                    i.regular,
                    i.value_min,
                    i.value_max,
                    dict(i.tags),
                    dict(i.extra),
                )
                for i in infos
            }

    def metas(self, series: Sequence[str]) -> dict[str, SeriesMeta]:
        """The metadata this run holds of those of ``series`` the catalog knows."""
        with self._lock:
            return {sid: self._meta[sid] for sid in series if sid in self._meta}

    def update_meta(self, updates: dict[str, dict[str, Any]], *, later: bool = False) -> None:
        """Apply tasks' metadata to the series this run knows and record it in the catalog
        (``later``: on the writer thread; this run's tasks see it at once either way)."""
        with self._lock:
            known = {sid: fields for sid, fields in updates.items() if sid in self._meta}
            for sid, fields in known.items():
                self._meta[sid] = apply_metadata(self._meta[sid], fields)
        unknown = sorted(set(updates) - set(known))
        if unknown:
            log.warning(
                "metadata of %d series not in the catalog ignored (first %s)", len(unknown), unknown[0]
            )
        if not known:
            return
        metas = {sid: _jsonable(f) for sid, f in known.items()}
        if later and self._writer is not None:
            self._writer.submit(self._store_metas, metas)
        else:
            self.catalog.update_series_metas(metas)

    def _store_metas(self, metas: dict[str, Any]) -> None:
        try:
            self.catalog.update_series_metas(metas)
        except SparkhuError as exc:
            log.error("cannot record the metadata of %d series: %s", len(metas), exc)

    def record(self, task: Task, run: TaskRun, started_at: datetime) -> None:
        finished = datetime.now(UTC)
        params = _jsonable(
            {
                "dataset": self.dataset,
                "params": dict(task.params),
                "lookback_s": task.lookback.total_seconds(),
            }
        )
        name = self.record_name(task.name)
        records = [
            RunRecord(
                run_id=run.run_id,
                kind=RUN_KIND,
                name=name,
                status=run.status,
                started_at=started_at,
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
                    started_at=started_at,
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

    # ------------------------------------------------------------------ helpers

    def _intervals(self, start_day: date, end_day: date) -> list[tuple[datetime, datetime]]:
        out = []
        day = start_day
        while day <= end_day:
            last = min(day + timedelta(days=self.days_per_run - 1), end_day)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            out.append((start, start + timedelta(days=(last - day).days + 1)))
            day = last + timedelta(days=1)
        return out

    def _where(self, dataset: str) -> str:
        spec = self.datasets.spec(dataset)
        return f"{spec.zone}/{spec.name}"


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


def _day(value: object, what: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise PipelineError(f"{what} must be a datetime.date, got {value!r}")
    return value


def _runs_of_days(days: list[date]) -> list[tuple[date, date]]:
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _jsonable(value: Any) -> Any:
    """A JSON-able copy: numpy scalars and arrays to Python, other unknowns to strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)
