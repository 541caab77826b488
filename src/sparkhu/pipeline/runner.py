"""The DAG runner: it schedules the stages of a run over days of one source dataset; hooks do the rest.

:meth:`PipelineRunner.run` cuts the DAG into stages (:meth:`Dag.stages
<sparkhu.pipeline.dag.Dag.stages>`): a *chain* of every per-series task whose upstream is done
(:class:`~sparkhu.pipeline.chain_driver.ChainDriver`, which maps
:func:`~sparkhu.pipeline.chain_worker.run_chain` over chunks of series with the engine), then
the ``scope="all"`` tasks waiting for it (:class:`~sparkhu.pipeline.all_series_driver.AllSeriesDriver`,
the tasks of a level on ``threads`` threads), and so on, each over the run's intervals of
``days_per_run`` days. The stages share a :class:`~sparkhu.pipeline.session.RunSession`: the
outputs kept for later stages and written behind (:mod:`sparkhu.pipeline.outputs`), the series
metadata, one :class:`~sparkhu.retrying.RetryPolicy` (``retries`` extra attempts with back-off
``backoff_s · 2^attempt``) and the hooks (:mod:`sparkhu.pipeline.hooks`). Run records in the
catalog (:class:`~sparkhu.pipeline.records.RunRecords`, always registered: :meth:`run_missing`
reads them) and whatever ``hooks`` are given (reports, progress) hang on those hooks.

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

import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

from sparkhu.engine.base import Engine
from sparkhu.errors import PipelineError
from sparkhu.pipeline.all_series_driver import AllSeriesDriver
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.chain_driver import ChainDriver
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT, Dag
from sparkhu.pipeline.datasets import Datasets
from sparkhu.pipeline.hooks import HookRelay, PipelineHooks
from sparkhu.pipeline.outputs import RunOutputs
from sparkhu.pipeline.records import RunRecords
from sparkhu.pipeline.runs import PlanStep, RunSummary, SeriesResult, TaskRun
from sparkhu.pipeline.session import RunSession, SeriesMetas
from sparkhu.retrying import RetryPolicy
from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake

__all__ = ["PipelineRunner", "PlanStep", "RunSummary", "SeriesResult", "TaskRun"]


class PipelineRunner:
    """Runs a :class:`~sparkhu.pipeline.dag.Dag` over days of one source dataset.

    ``retries``: extra attempts of a failed task-day (and of failed series) with a back-off
    of ``backoff_s · 2^attempt``; ``days_per_run``: days per task-interval (1 = daily records;
    more = fewer, larger batches for back-fills); ``threads``: tasks of a level run at once
    (0: all of them); ``max_cache_rows``: rows of outputs kept in memory for later stages;
    ``hooks``: called around each task-day after the run records (e.g.
    :class:`~sparkhu.pipeline.reports.ReportWriter`, :class:`~sparkhu.pipeline.hooks.ProgressHook`).
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
        days_per_run: int = 1,
        threads: int = 0,
        datasets: Datasets | None = None,
        max_cache_rows: int = 100_000_000,
        hooks: Sequence[PipelineHooks] = (),
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
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
        self.days_per_run = days_per_run
        self.threads = threads
        self.datasets = datasets or Datasets(lake, dataset)
        self.max_cache_rows = max_cache_rows
        self.records = RunRecords(catalog, dataset, self._where)
        self.hooks = HookRelay([self.records, *hooks])

    def plan(
        self,
        start_day: date,
        end_day: date,
        *,
        tasks: Sequence[str] | None = None,
        downstream: bool = True,
    ) -> list[PlanStep]:
        """The task-intervals a run of days ``start_day``..``end_day`` (inclusive) would execute."""
        dag = self._dag(tasks, downstream)
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
        downstream: bool = True,
        dry_run: bool = False,
        stop: threading.Event | None = None,
    ) -> RunSummary:
        """Run the DAG (or ``tasks`` and their downstream) for days ``start_day``..``end_day`` inclusive.

        ``downstream=False`` runs exactly ``tasks``, reading their inputs from the lake as earlier
        runs left them (what an outside scheduler that runs the graph itself asks for).
        ``dry_run`` returns the plan and touches nothing (no read, no write, no record).
        ``stop`` set (a platform stopping): no further stage starts; the summary holds the
        task-days that ran, and those not run stay missing for the next catch-up.
        """
        start_day, end_day = _day(start_day, "start_day"), _day(end_day, "end_day")
        if end_day < start_day:
            raise PipelineError(f"end day {end_day} is before start day {start_day}")
        plan = self.plan(start_day, end_day, tasks=tasks, downstream=downstream)
        summary = RunSummary(self.dataset, plan, dry_run=dry_run)
        if dry_run:
            return summary
        began = time.perf_counter()
        dag = self._dag(tasks, downstream)
        intervals = self._intervals(start_day, end_day)
        retry = RetryPolicy(self.retries, self.backoff_s)
        self.hooks.before_run(self.dataset, plan)
        runs: list[TaskRun] = []
        with RunOutputs.of(self.datasets, dag, max_rows=self.max_cache_rows) as outputs:
            metas = SeriesMetas(self.catalog, outputs)
            session = RunSession(self.engine, self.datasets, outputs, metas, retry, self.hooks)
            for kind, level in dag.stages():
                if stop is not None and stop.is_set():
                    break
                if kind == "chain":
                    runs.extend(ChainDriver(session, dag, level).run(intervals))
                else:
                    runs.extend(self._run_level(session, level, intervals))
        order = {t.name: i for i, t in enumerate(dag.ordered())}
        summary.runs.extend(sorted(runs, key=lambda r: (order[r.task], r.start)))
        summary.seconds = time.perf_counter() - began
        self.hooks.after_run(summary)
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

    def run_missing(
        self, until_day: date, *, since: date | None = None, stop: threading.Event | None = None
    ) -> RunSummary:
        """Catch up: run the whole DAG on every day up to ``until_day`` missing a successful run
        (until ``stop`` is set: see :meth:`run`)."""
        days = self.missing_days(until_day, since=since)
        total = RunSummary(self.dataset, [])
        began = time.perf_counter()
        for first, last in _runs_of_days(days):
            if stop is not None and stop.is_set():
                break
            part = self.run(first, last, stop=stop)
            total.plan.extend(part.plan)
            total.runs.extend(part.runs)
        total.seconds = time.perf_counter() - began
        return total

    def done_days(self, task: str) -> set[date]:
        """Days covered by a successful run of ``task`` on this dataset."""
        return self.records.done_days(task)

    def last_runs(self) -> dict[str, RunRecord]:
        """The newest task-day record of each task of the DAG (absent if it never ran)."""
        found = {task.name: self.records.last(task.name) for task in self.dag.tasks}
        return {name: record for name, record in found.items() if record is not None}

    def first_day(self) -> date | None:
        """The first UTC day of the source dataset in the lake (None when it is empty)."""
        for source in self.dag.sources:
            if source in self.dag.metadata:
                continue  # series metadata: in the catalog, not the lake
            spec = self.datasets.spec(source)
            parts = self.lake.partitions(spec.zone, spec.name)
            if parts:
                y, m, d = (int(x) for x in re.findall(r"\d+", parts[0].key)[:3])
                return date(y, m, d)
        return None

    def _dag(self, tasks: Sequence[str] | None, downstream: bool) -> Dag:
        return self.dag.subset(tasks, with_downstream=downstream) if tasks else self.dag

    def _run_level(
        self, session: RunSession, level: list[Task], intervals: list[tuple[datetime, datetime]]
    ) -> list[TaskRun]:
        """The ``scope="all"`` tasks of a level, on up to ``threads`` threads."""
        width = len(level) if self.threads <= 0 else min(self.threads, len(level))
        if width <= 1:
            return [run for task in level for run in AllSeriesDriver(session, task).run(intervals)]
        with ThreadPoolExecutor(width, thread_name_prefix="pipeline") as pool:
            done = pool.map(lambda t: AllSeriesDriver(session, t).run(intervals), level)
            return [run for runs in done for run in runs]

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
