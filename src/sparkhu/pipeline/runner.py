"""The DAG runner: tasks bound to the lake, mapped over series by an engine, recorded in the catalog.

For each task in topological order (the independent tasks of a level in threads) and each
interval of days, :meth:`PipelineRunner.run`:

1. reads the task's inputs for ``[start - lookback, end)``;
2. groups them by series (one sort, slices at the series boundaries) and builds one
   :class:`~sparkhu.pipeline.base.TaskInput` per series with its catalog metadata;
3. skips series with fewer than ``min_points`` points (reason recorded) and maps the task
   over the rest with the engine; a failing series never stops the others, and failed
   series are retried with exponential back-off;
4. keeps the output rows with ``start <= ts < end`` and replaces those days of each output
   dataset (re-runs are idempotent), quarantines ``rejects``, records series metadata;
5. writes one run record for the task-day and one per series (one transaction) and a
   JSON + HTML report.

A task-day that raises (storage, a ``scope="all"`` function) is retried the same way, then
recorded as failed; the other tasks go on (its downstream tasks read what is there).

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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkhu.engine.base import CallFailure, Engine
from sparkhu.errors import PipelineError, SparkhuError
from sparkhu.pipeline.base import SeriesMeta, Task, TaskInput, TaskOutput
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT, Dag
from sparkhu.pipeline.datasets import Datasets, assemble, group_frames, within
from sparkhu.pipeline.reports import write_report
from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake

log = logging.getLogger(__name__)

RUN_KIND = "pipeline"
"""Kind of the task-day run records; per-series records are ``pipeline.series``."""
SERIES_KIND = "pipeline.series"


@dataclass
class SeriesResult:
    """One series' outcome in one task-day."""

    series_id: str
    status: str  # success, failed, skipped
    rows_in: int = 0
    rows_out: int = 0
    error: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRun:
    """One task over one interval of days: what it read, wrote, skipped and how it ended."""

    task: str
    start: datetime
    end: datetime
    status: str = "success"
    attempts: int = 1
    rows_in: int = 0
    rows_out: dict[str, int] = field(default_factory=dict)
    series: list[SeriesResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    reports: list[Path] = field(default_factory=list)
    run_id: str = ""

    def count(self, status: str) -> int:
        """How many series ended with ``status``."""
        return sum(1 for s in self.series if s.status == status)

    @property
    def skipped(self) -> dict[str, int]:
        """Skip reason → number of series."""
        out: dict[str, int] = {}
        for s in self.series:
            if s.status == "skipped":
                out[s.error or ""] = out.get(s.error or "", 0) + 1
        return out


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
        self._lock = threading.Lock()

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
        with self._lock:
            self._cache.clear()
            self._readers = {}
            for task in dag.tasks:
                for d in set(task.inputs.values()):
                    if d in dag.producer:
                        self._readers[d] = self._readers.get(d, 0) + 1
        intervals = self._intervals(start_day, end_day)
        for level in dag.levels:
            width = len(level) if self.threads <= 0 else min(self.threads, len(level))
            if width <= 1:
                for task in level:
                    summary.runs.extend(self._run_task(task, intervals))
            else:
                with ThreadPoolExecutor(width, thread_name_prefix="pipeline") as pool:
                    for runs in pool.map(lambda t: self._run_task(t, intervals), level):
                        summary.runs.extend(runs)
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
            run = self._attempts(task, start, end)
            if self.on_progress is not None:
                self.on_progress(run)
            runs.append(run)
        with self._lock:  # a dataset no task is left to read leaves the cache
            for dataset in set(task.inputs.values()):
                if dataset in self._readers:
                    self._readers[dataset] -= 1
                    if self._readers[dataset] <= 0:
                        self._cache.pop(dataset, None)
        return runs

    # ------------------------------------------------------------------ hand-off between tasks

    def _keep(self, dataset: str, start: datetime, end: datetime, table: pa.Table) -> None:
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

    def _read(self, dataset: str, start: datetime, end: datetime) -> pa.Table:
        """``[start, end)`` of ``dataset``: from this run's outputs where they cover it, else the lake."""
        with self._lock:
            pieces = list(self._cache.get(dataset, ()))
        if not pieces or end > pieces[-1][1] or end <= pieces[0][0]:
            return self.datasets.read(dataset, start, end)
        first = pieces[0][0]
        parts = [t for s, e, t in pieces if e > start and s < end]
        cached = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
        if pieces[0][0] > start or pieces[-1][1] < end or len(parts) != len(pieces):
            cached = within(cached, max(start, first), end)
        if start < first:
            older = self.datasets.read(dataset, start, first)
            if older.num_rows:
                older = older.cast(cached.schema) if older.schema != cached.schema else older
                cached = pa.concat_tables([older, cached], promote_options="permissive")
        return cached

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
                reason = str(exc) if isinstance(exc, SparkhuError) else f"{type(exc).__name__}: {exc}"
                log.warning("task %s %s attempt %d failed: %s", task.name, start.date(), attempt + 1, reason)
                if attempt >= self.retries:
                    run.status, run.error = "failed", reason
                    with self._lock:  # its outputs are not all written: readers go to the lake
                        for dataset in task.outputs.values():
                            self._cache.pop(dataset, None)
                            self._readers.pop(dataset, None)
                    break
                time.sleep(self.backoff_s * 2**attempt)
                attempt += 1
        run.seconds = time.perf_counter() - began
        self._record(task, run, started_at)
        if self.report_dir is not None:
            try:
                run.reports = write_report(self.report_dir, self.dataset, task, run)
            except OSError as exc:
                log.warning("cannot write the report of %s %s: %s", task.name, start.date(), exc)
        return run

    def _run_interval(self, task: Task, run: TaskRun) -> None:
        read_start = run.start - task.lookback
        tables = {name: self._read(d, read_start, run.end) for name, d in task.inputs.items()}
        run.rows_in = sum(t.num_rows for t in tables.values())
        if task.scope == "all":
            outputs = {"*": self._call_all(task, tables)}
            run.series = [SeriesResult("*", "success", run.rows_in, report=outputs["*"].report)]
        else:
            outputs = self._map_series(task, tables, run)
        self._write(task, run, outputs)

    def _call_all(self, task: Task, tables: dict[str, pa.Table]) -> TaskOutput:
        frames = {}
        for name, table in tables.items():
            frame = table.to_pandas()
            if "series_id" in frame.columns:
                frame["series_id"] = frame["series_id"].astype(str)
            frames[name] = frame
        result = task.fn(frames, **dict(task.params))
        if not isinstance(result, TaskOutput):
            raise PipelineError(f"task {task.name!r} returned {type(result).__name__}, expected TaskOutput")
        return result

    def _map_series(self, task: Task, tables: dict[str, pa.Table], run: TaskRun) -> dict[str, TaskOutput]:
        names = list(task.inputs)
        grouped = {name: group_frames(tables[name]) for name in names}
        empty = {name: _empty_like(tables[name]) for name in names}
        primary = grouped[names[0]]
        start, end = pd.Timestamp(run.start), pd.Timestamp(run.end)
        results: dict[str, SeriesResult] = {}
        todo: list[TaskInput] = []
        for sid, frame in primary.items():
            if len(frame) < task.min_points:
                why = f"fewer than {task.min_points} points ({len(frame)})"
                results[sid] = SeriesResult(sid, "skipped", len(frame), error=why)
                continue
            frames = {name: grouped[name].get(sid, empty[name]) for name in names}
            todo.append(TaskInput(sid, frames, self._meta_of(sid), start, end))
            results[sid] = SeriesResult(sid, "failed", len(frame))
        outputs: dict[str, TaskOutput] = {}
        attempt = 0
        while todo:
            sizes = [len(inp.frames[names[0]]) for inp in todo]
            mapped = self.engine.map_inputs(task.fn, todo, dict(task.params), sizes=sizes)
            failed = []
            for inp, out in zip(todo, mapped, strict=True):
                res = results[inp.series_id]
                error = self._check_output(task, out)
                if error is not None:
                    res.error = error
                    failed.append(inp)
                    continue
                assert isinstance(out, TaskOutput)
                res.report = out.report
                if out.skipped:
                    res.status, res.error = "skipped", out.skipped
                    continue
                res.status, res.error = "success", None
                outputs[inp.series_id] = out
            if not failed or attempt >= self.retries:
                break
            time.sleep(self.backoff_s * 2**attempt)
            attempt += 1
            todo = failed
        run.series = list(results.values())
        if any(s.status == "failed" for s in run.series):
            run.status = "failed"
            first = next(s for s in run.series if s.status == "failed")
            run.error = f"{run.count('failed')} series failed; first {first.series_id}: {first.error}"
        return outputs

    @staticmethod
    def _check_output(task: Task, out: Any) -> str | None:
        if isinstance(out, CallFailure):
            return out.error
        if not isinstance(out, TaskOutput):
            return f"{task.name} returned {type(out).__name__}, expected TaskOutput"
        unknown = [k for k in out.frames if k not in task.outputs]
        if unknown:
            listed, known = ", ".join(unknown), ", ".join(task.outputs)
            return f"{task.name} returned frame(s) {listed} not among its outputs ({known})"
        bad = [k for k, f in out.frames.items() if not isinstance(f, pd.DataFrame)]
        if bad:
            return f"{task.name}: output {bad[0]!r} is a {type(out.frames[bad[0]]).__name__}, not a DataFrame"
        return None

    def _write(self, task: Task, run: TaskRun, outputs: dict[str, TaskOutput]) -> None:
        days = [run.start.date() + timedelta(days=i) for i in range((run.end - run.start).days)]
        by_series = {s.series_id: s for s in run.series}
        for key, dataset in task.outputs.items():
            parts = [(sid, out.frames[key]) for sid, out in outputs.items() if key in out.frames]
            if key == QUARANTINE_OUTPUT:
                self._quarantine(task, parts)
                continue
            spec = self.datasets.spec(dataset)
            if task.scope == "all":
                frame = parts[0][1] if parts else pd.DataFrame({"series_id": [], "ts": []})
                table = _table_of_all(task, frame, points=spec.points)
            else:
                table = assemble(parts, points=spec.points)
            table = within(table, run.start, run.end)
            self.datasets.replace(dataset, table, days)
            self._keep(dataset, run.start, run.end, table)
            run.rows_out[dataset] = table.num_rows
            if task.scope == "series" and table.num_rows:
                ids = table.column("series_id").combine_chunks()
                counts = np.bincount(
                    ids.indices.to_numpy(zero_copy_only=False), minlength=len(ids.dictionary)
                )
                for sid, n in zip(ids.dictionary.to_pylist(), counts.tolist(), strict=True):
                    if sid in by_series:
                        by_series[sid].rows_out += n
        if task.scope == "all":  # metadata of a scope-all task: series id → fields
            meta = next(iter(outputs.values())).metadata if outputs else {}
            updates = {sid: dict(f) for sid, f in meta.items() if isinstance(f, Mapping)}
        else:
            updates = {sid: out.metadata for sid, out in outputs.items() if out.metadata}
        if updates:
            self._update_meta(updates)

    def _quarantine(self, task: Task, parts: list[tuple[str, pd.DataFrame]]) -> None:
        parts = [(sid, frame) for sid, frame in parts if len(frame)]
        if not parts:
            return
        frame = pd.concat([f.assign(series_id=sid) for sid, f in parts], ignore_index=True)
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

    def _meta_of(self, sid: str) -> SeriesMeta:
        with self._lock:
            return self._meta.get(sid) or SeriesMeta(sid)

    def _update_meta(self, updates: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            known = {sid: fields for sid, fields in updates.items() if sid in self._meta}
            for sid, fields in known.items():
                meta = self._meta[sid]
                direct = {
                    k: v
                    for k, v in fields.items()
                    if k in ("period_s", "regular", "unit", "value_min", "value_max")
                }
                extra = {k: v for k, v in fields.items() if k not in direct}
                self._meta[sid] = replace(meta, **direct, extra={**meta.extra, **extra})
        unknown = sorted(set(updates) - set(known))
        if unknown:
            log.warning(
                "metadata of %d series not in the catalog ignored (first %s)", len(unknown), unknown[0]
            )
        self.catalog.update_series_metas({sid: _jsonable(f) for sid, f in known.items()})

    def _record(self, task: Task, run: TaskRun, started_at: datetime) -> None:
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


def _empty_like(table: pa.Table) -> pd.DataFrame:
    return table.schema.empty_table().drop_columns(["series_id"]).to_pandas()


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
