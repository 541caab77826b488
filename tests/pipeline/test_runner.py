"""The DAG runner on a real lake and SQLite catalog, with small toy tasks."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkhu.engine.local import LocalEngine
from sparkhu.errors import LakeError, PipelineError
from sparkhu.pipeline import examples
from sparkhu.pipeline.base import Task, TaskInput, TaskOutput
from sparkhu.pipeline.dag import Dag
from sparkhu.pipeline.datasets import Datasets
from sparkhu.pipeline.hooks import PipelineHooks
from sparkhu.pipeline.reports import ReportWriter
from sparkhu.pipeline.runner import PipelineRunner
from sparkhu.pipeline.runs import PlanStep, RunSummary, TaskRun
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake

D = "meters"
DAY0 = date(2024, 1, 1)
T0_US = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1e6)
MIN_US = 60_000_000


def fail_for_bad(inp: TaskInput) -> TaskOutput:
    """Raise for one series, copy the others."""
    if inp.series_id.endswith("bad"):
        raise ValueError("cannot handle this one")
    return TaskOutput(frames={"points": inp.frames["points"]})


def skip_constant(inp: TaskInput) -> TaskOutput:
    """Skip series whose values never change; report the spread."""
    values = inp.frames["points"]["value"]
    if values.nunique() == 1:
        return TaskOutput(skipped="constant", report={"spread": 0.0})
    return TaskOutput(
        frames={"points": inp.frames["points"]}, report={"spread": float(values.max() - values.min())}
    )


def record_period(inp: TaskInput) -> TaskOutput:
    """Record metadata: the median step as period_s and an extra key."""
    ts = inp.frames["points"]["ts"]
    period = float(np.median(np.diff(ts.astype("int64").to_numpy())) / 1e6)
    return TaskOutput(metadata={"period_s": period, "regular": True, "season": [1440]})


def use_period(inp: TaskInput) -> TaskOutput:
    """Write the period the catalog holds for the series (set by an upstream task)."""
    frame = (
        inp.frames["points"]
        .iloc[:1]
        .assign(value=inp.meta.period_s or -1.0, season=inp.meta.extra["season"][0])
    )
    return TaskOutput(frames={"meta": frame[["ts", "value", "season"]]})


def flaky_all(frames: dict[str, pd.DataFrame], counter: str, fail_times: int) -> TaskOutput:
    """A scope-all task that fails its first ``fail_times`` calls (counted in a file)."""
    path = Path(counter)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    if calls < fail_times:
        raise RuntimeError(f"transient failure {calls + 1}")
    return examples.mean_of_all(frames)


def reject_negative(inp: TaskInput) -> TaskOutput:
    """Pass non-negative points, reject the others with a reason."""
    frame = inp.frames["points"]
    bad = frame["value"] < 0
    rejects = frame[bad].assign(field="value", reason="negative value")
    return TaskOutput(frames={"points": frame[~bad], "rejects": rejects})


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield cat
    cat.close()


def _raw(lake: Lake, ids: list[str], days: int = 2, per_day: int = 48, offset: float = 0.0) -> int:
    step = 86_400_000_000 // per_day
    ts = T0_US + np.arange(days * per_day, dtype=np.int64) * step
    all_ids, all_ts, values = [], [], []
    for k, sid in enumerate(ids):
        all_ids += [sid] * len(ts)
        all_ts.append(ts)
        values.append(np.sin(np.arange(len(ts)) / 5.0) + k + offset)
    lake.write("raw", D, points(all_ids, np.concatenate(all_ts), np.concatenate(values)))
    return len(ts)


def _runner(
    lake: Lake,
    catalog: Catalog,
    tasks: list[Task],
    tmp_path: Path,
    hooks: Sequence[PipelineHooks] = (),
    **kw: Any,
) -> PipelineRunner:
    return PipelineRunner(
        lake,
        catalog,
        LocalEngine(1),
        Dag(tasks),
        dataset=D,
        backoff_s=0.01,
        hooks=[ReportWriter(tmp_path / "reports", D), *hooks],
        **kw,
    )


def test_outputs_records_and_reports_are_written(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    n = _raw(lake, ["a/b/x", "a/b/y"])
    dag = [
        Task("double", examples.scale, {"points": "raw"}, {"points": "deduped"}, params={"factor": 2.0}),
        Task("daily", examples.daily_mean, {"points": "deduped"}, {"stats": "stats"}),
    ]
    runner = _runner(lake, catalog, dag, tmp_path)
    summary = runner.run(DAY0, DAY0 + timedelta(days=1))
    assert summary.status == "success"
    assert [(r.task, r.start.date()) for r in summary.runs] == [
        ("double", DAY0),
        ("double", DAY0 + timedelta(days=1)),
        ("daily", DAY0),
        ("daily", DAY0 + timedelta(days=1)),
    ]
    doubled = lake.read("clean", f"{D}.deduped")
    raw = lake.read("raw", D)
    assert doubled.num_rows == 2 * n
    np.testing.assert_allclose(doubled["value"].to_numpy(), 2 * raw["value"].to_numpy())
    stats = lake.read_table("analysis", f"{D}.stats").to_pandas()
    assert len(stats) == 4 and set(stats["count"]) == {48}
    records = catalog.runs(kind="pipeline", name=f"{D}/double", limit=10)
    assert {r.status for r in records} == {"success"} and len(records) == 2
    assert records[0].params["params"] == {"factor": 2.0} and records[0].rows_in == 2 * 48
    per_series = catalog.runs(kind="pipeline.series", name=f"{D}/daily", limit=10)
    assert sorted((r.series_id, r.rows_out) for r in per_series) == [("a/b/x", 1)] * 2 + [("a/b/y", 1)] * 2
    folder = tmp_path / "reports" / D / "2024-01-01"
    doc = json.loads((folder / "double.json").read_text())
    assert doc["series"] == {"total": 2, "success": 2, "failed": 0, "skipped": 0}
    assert doc["figures"]["points"]["sum"] == 96
    assert "<svg" in (folder / "double.html").read_text()
    assert "double.html" in (folder / "index.html").read_text()


def test_rerun_replaces_outputs_without_duplicates(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    _raw(lake, ["a/b/x"], days=1)
    runner = _runner(
        lake, catalog, [Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"})], tmp_path
    )
    runner.run(DAY0, DAY0)
    first = lake.read("clean", D, dedup=False)
    _raw(lake, ["a/b/x"], days=1, offset=10.0)  # corrected readings arrive
    runner.run(DAY0, DAY0)
    second = lake.read("clean", D, dedup=False)
    assert second.num_rows == first.num_rows == 48
    assert len(lake.files("clean", D)) == 1
    np.testing.assert_allclose(second["value"].to_numpy(), first["value"].to_numpy() + 10.0)


def test_one_failing_series_is_recorded_and_the_others_written(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    _raw(lake, ["a/b/bad", "a/b/good"], days=1)
    runner = _runner(
        lake, catalog, [Task("f", fail_for_bad, {"points": "raw"}, {"points": "clean"})], tmp_path
    )
    began = time.perf_counter()
    summary = runner.run(DAY0, DAY0)
    run = summary.runs[0]
    assert run.status == "failed" and "a/b/bad: ValueError: cannot handle this one" in (run.error or "")
    assert time.perf_counter() - began >= 0.01 + 0.02  # failed series retried with back-off
    assert lake.series("clean", D) == ["a/b/good"]
    by_series = {r.series_id: r for r in catalog.runs(kind="pipeline.series", limit=10)}
    assert by_series["a/b/bad"].status == "failed" and "cannot handle" in (by_series["a/b/bad"].error or "")
    assert by_series["a/b/good"].status == "success" and by_series["a/b/good"].rows_out == 48
    doc = json.loads((tmp_path / "reports" / D / "2024-01-01" / "f.json").read_text())
    assert doc["failures"][0]["series_id"] == "a/b/bad"


def test_failed_task_day_is_retried_with_exponential_backoff(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    _raw(lake, ["a/b/x"], days=1)
    counter = tmp_path / "calls"
    task = Task(
        "flaky",
        flaky_all,
        {"points": "raw"},
        {"means": "means"},
        scope="all",
        params={"counter": str(counter), "fail_times": 2},
    )
    runner = _runner(lake, catalog, [task], tmp_path)
    runner.backoff_s = 0.05
    began = time.perf_counter()
    run = runner.run(DAY0, DAY0).runs[0]
    assert time.perf_counter() - began >= 0.05 + 0.1
    assert (run.status, run.attempts, counter.read_text()) == ("success", 3, "3")
    assert lake.read_table("analysis", f"{D}.means").num_rows == 1
    counter.write_text("0")
    runner.retries = 1
    run = runner.run(DAY0, DAY0).runs[0]
    assert run.status == "failed" and "transient failure 2" in (run.error or "")
    assert catalog.runs(kind="pipeline", limit=1)[0].status == "failed"


def test_skipped_series_carry_their_reason(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    lake.write("raw", D, points("a/b/flat", T0_US + np.arange(10) * MIN_US, np.ones(10)))
    lake.write("raw", D, points("a/b/few", T0_US + np.arange(3) * MIN_US, np.arange(3.0)))
    lake.write("raw", D, points("a/b/ok", T0_US + np.arange(10) * MIN_US, np.arange(10.0)))
    runner = _runner(
        lake, catalog, [Task("s", skip_constant, {"points": "raw"}, {"points": "clean"})], tmp_path
    )
    run = runner.run(DAY0, DAY0).runs[0]
    assert run.status == "success"
    assert run.skipped == {"constant": 1, "fewer than 5 points (3)": 1}
    assert lake.series("clean", D) == ["a/b/ok"]
    records = {r.series_id: (r.status, r.error) for r in catalog.runs(kind="pipeline.series", limit=10)}
    assert records["a/b/flat"] == ("skipped", "constant")
    assert records["a/b/few"] == ("skipped", "fewer than 5 points (3)")


def test_metadata_is_recorded_and_seen_by_downstream_tasks(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    catalog.upsert_series(SeriesInfo.of("a/b/x", unit="W"))
    _raw(lake, ["a/b/x"], days=1)
    dag = [
        Task("period", record_period, {"points": "raw"}, {}),
        Task("use", use_period, {"points": "raw"}, {"meta": "meta"}),
    ]
    runner = _runner(lake, catalog, dag, tmp_path)
    assert runner.run(DAY0, DAY0, tasks=["period"]).status == "success"
    info = catalog.series("a/b/x")
    assert (info.period_s, info.regular, info.extra, info.unit) == (1800.0, True, {"season": [1440]}, "W")
    runner.run(DAY0, DAY0, tasks=["use"])
    meta = lake.read_table("analysis", f"{D}.meta").to_pylist()[0]
    assert (meta["value"], meta["season"]) == (1800.0, 1440)


def test_rejects_go_to_quarantine(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    lake.write("raw", D, points("a/b/x", T0_US + np.arange(6) * MIN_US, [1.0, -1.0, 2.0, 3.0, -5.0, 4.0]))
    task = Task("v", reject_negative, {"points": "raw"}, {"points": "validated", "rejects": "quarantine"})
    _runner(lake, catalog, [task], tmp_path).run(DAY0, DAY0)
    assert lake.read("validated", D)["value"].to_pylist() == [1.0, 2.0, 3.0, 4.0]
    q = lake.read_quarantine(D).to_pylist()
    assert [(r["source"], r["field"], r["reason"], r["raw"]) for r in q] == [
        ("pipeline:v:a/b/x", "value", "negative value", "-1.0"),
        ("pipeline:v:a/b/x", "value", "negative value", "-5.0"),
    ]
    assert q[0]["location"] == "2024-01-01T00:01:00.000000Z"


def test_catch_up_runs_only_missing_days(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    _raw(lake, ["a/b/x"], days=4)
    runner = _runner(
        lake, catalog, [Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"})], tmp_path
    )
    runner.run(DAY0 + timedelta(days=1), DAY0 + timedelta(days=1))
    assert runner.missing_days(DAY0 + timedelta(days=2)) == [DAY0, DAY0 + timedelta(days=2)]
    summary = runner.run_missing(DAY0 + timedelta(days=2))
    assert [r.start.date() for r in summary.runs] == [DAY0, DAY0 + timedelta(days=2)]
    assert runner.missing_days(DAY0 + timedelta(days=2)) == []
    assert runner.run_missing(DAY0 + timedelta(days=2)).runs == []
    assert lake.read("clean", D).num_rows == 3 * 48


class _StopAfter(PipelineHooks):
    """Sets ``stop`` once a task-day of ``task`` is done, as a platform's SIGTERM would mid-run."""

    def __init__(self, task: str, stop: threading.Event) -> None:
        self.task, self.stop = task, stop

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        if task.name == self.task:
            self.stop.set()


def test_a_stop_ends_the_catch_up_between_stages_and_the_rest_stays_missing(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    _raw(lake, ["a/b/x"], days=3)
    stop = threading.Event()
    dag = [
        Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"}),
        Task("means", examples.mean_of_all, {"points": "clean"}, {"means": "means"}, scope="all"),
    ]  # two stages: the chain of per-series tasks, then the task over all series
    runner = _runner(lake, catalog, dag, tmp_path, hooks=[_StopAfter("copy", stop)])
    last = DAY0 + timedelta(days=2)
    summary = runner.run_missing(last, stop=stop)
    assert {r.task for r in summary.runs} == {"copy"}  # the second stage never started
    assert runner.missing_days(last) == [DAY0, DAY0 + timedelta(days=1), last]
    assert runner.run_missing(last, stop=stop).runs == []  # stopped: nothing starts
    later = _runner(lake, catalog, dag, tmp_path)  # the next catch-up, after a restart
    assert {r.task for r in later.run_missing(last).runs} == {"copy", "means"}
    assert later.missing_days(last) == []


def test_dry_run_touches_nothing(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    _raw(lake, ["a/b/x"], days=1)
    dag = [
        Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"}),
        Task(
            "daily", examples.daily_mean, {"points": "clean"}, {"stats": "stats"}, lookback=timedelta(days=7)
        ),
    ]
    summary = _runner(lake, catalog, dag, tmp_path).run(DAY0, DAY0 + timedelta(days=1), dry_run=True)
    assert summary.status == "planned" and summary.runs == []
    assert [(s.level, s.task, s.start.date()) for s in summary.plan] == [
        (0, "copy", DAY0),
        (0, "copy", DAY0 + timedelta(days=1)),
        (1, "daily", DAY0),
        (1, "daily", DAY0 + timedelta(days=1)),
    ]
    assert summary.plan[2].reads == (("clean", "clean/meters", datetime(2023, 12, 25, tzinfo=UTC)),)
    assert summary.plan[2].writes == (("stats", "analysis/meters.stats"),)
    assert lake.datasets() == [("raw", D)]
    assert catalog.runs(limit=10) == []
    assert not (tmp_path / "reports").exists()


def test_independent_tasks_of_a_level_run_and_days_per_run_batches(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    _raw(lake, ["a/b/x", "a/b/y"], days=3)
    dag = [
        Task("one", examples.passthrough, {"points": "raw"}, {"points": "o1"}),
        Task("two", examples.scale, {"points": "raw"}, {"points": "o2"}),
    ]
    runner = _runner(lake, catalog, dag, tmp_path, days_per_run=3)
    summary = runner.run(DAY0, DAY0 + timedelta(days=2))
    assert sorted(r.task for r in summary.runs) == ["one", "two"]
    assert {(r.end - r.start).days for r in summary.runs} == {3}
    assert lake.read_table("analysis", f"{D}.o2").num_rows == 2 * 3 * 48
    assert runner.done_days("one") == {DAY0 + timedelta(days=i) for i in range(3)}
    assert (tmp_path / "reports" / D / "2024-01-01_2024-01-03" / "two.html").exists()


def test_process_pool_is_used_for_large_inputs(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    _raw(lake, [f"a/b/s{i}" for i in range(8)], days=1, per_day=1440)
    engine = LocalEngine(workers=2, min_rows_for_pool=1000)
    task = Task("pid", examples.worker_pid, {"points": "raw"}, {"points": "clean"})
    with engine:
        runner = PipelineRunner(lake, catalog, engine, Dag([task]), dataset=D)
        run = runner.run(DAY0, DAY0).runs[0]
        assert engine.last_mode == "pool" and run.status == "success"
    pids = set(lake.read("clean", D)["value"].to_pylist())
    assert os.getpid() not in pids and len(pids) >= 1


def test_bad_arguments_are_rejected(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    runner = _runner(
        lake, catalog, [Task("c", examples.passthrough, {"points": "raw"}, {"points": "x"})], tmp_path
    )
    with pytest.raises(PipelineError, match="end day 2024-01-01 is before start day 2024-01-02"):
        runner.run(DAY0 + timedelta(days=1), DAY0)
    with pytest.raises(PipelineError, match=r"start_day must be a datetime\.date"):
        runner.run("2024-01-01", DAY0)  # type: ignore[arg-type]
    with pytest.raises(PipelineError, match="no task 'nope'"):
        runner.run(DAY0, DAY0, tasks=["nope"])
    with pytest.raises(PipelineError, match="retries must be an integer >= 0"):
        PipelineRunner(lake, catalog, LocalEngine(1), runner.dag, dataset=D, retries=-1)


def test_output_not_declared_fails_the_series(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    _raw(lake, ["a/b/x"], days=1)
    task = Task("odd", examples.daily_mean, {"points": "raw"}, {"points": "x"})  # returns "stats"
    run = _runner(lake, catalog, [task], tmp_path, retries=0).run(DAY0, DAY0).runs[0]
    assert run.status == "failed" and "returned frame(s) stats not among its outputs (points)" in (
        run.error or ""
    )


def test_downstream_reads_from_this_runs_outputs_match_lake_reads(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    _raw(lake, ["a/b/x", "a/b/y"], days=3)
    dag = [
        Task("copy", examples.passthrough, {"points": "raw"}, {"points": "deduped"}),
        Task(
            "daily",
            examples.daily_mean,
            {"points": "deduped"},
            {"stats": "stats"},
            lookback=timedelta(days=2),
        ),
    ]
    cached = _runner(lake, catalog, dag, tmp_path)
    cached.run(DAY0, DAY0 + timedelta(days=2))
    via_cache = lake.read_table("analysis", f"{D}.stats").to_pylist()
    assert len(via_cache) == 2 * 3
    uncached = _runner(lake, catalog, dag, tmp_path, max_cache_rows=0)
    uncached.run(DAY0, DAY0 + timedelta(days=2))
    assert lake.read_table("analysis", f"{D}.stats").to_pylist() == via_cache


def _mid_chain(failing: Task) -> list[Task]:
    return [
        Task("first", examples.passthrough, {"points": "raw"}, {"points": "deduped"}),
        failing,
        Task("after", examples.scale, {"points": "inliers"}, {"points": "clean"}),
        Task("beside", examples.daily_mean, {"points": "deduped"}, {"stats": "stats"}),
    ]


def test_a_series_failing_mid_chain_skips_only_its_downstream(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    _raw(lake, ["a/b/bad", "a/b/good"], days=1)
    failing = Task("f", fail_for_bad, {"points": "deduped"}, {"points": "inliers"})
    summary = _runner(lake, catalog, _mid_chain(failing), tmp_path).run(DAY0, DAY0)
    runs = {r.task: r for r in summary.runs}
    assert [r.task for r in summary.runs] == ["first", "beside", "f", "after"]
    assert runs["f"].status == "failed" and "a/b/bad: ValueError: cannot handle" in (runs["f"].error or "")
    after = {s.series_id: (s.status, s.error) for s in runs["after"].series}
    assert after == {"a/b/bad": ("skipped", "upstream task 'f' failed"), "a/b/good": ("success", None)}
    assert runs["after"].status == "success" and runs["beside"].count("success") == 2
    assert lake.series("clean", D) == ["a/b/good"]
    assert lake.series("clean", f"{D}.deduped") == ["a/b/bad", "a/b/good"]
    records = {
        r.series_id: (r.status, r.error) for r in catalog.runs(kind="pipeline.series", name=f"{D}/after")
    }
    assert records["a/b/bad"] == ("skipped", "upstream task 'f' failed")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_retried_series_resumes_the_chain_where_it_failed(
    lake: Lake, catalog: Catalog, tmp_path: Path, workers: int
) -> None:
    n = _raw(lake, ["a/b/bad", "a/b/good"], days=1)
    counter = tmp_path / "calls"
    failing = Task(
        "f",
        examples.fail_first_call,
        {"points": "deduped"},
        {"points": "inliers"},
        params={"counter": str(counter)},
    )
    began = time.perf_counter()
    pid = Task("pid", examples.worker_pid, {"points": "raw"}, {"points": "normalized"})
    with LocalEngine(workers, min_rows_for_pool=10) as engine:
        runner = _runner(lake, catalog, [*_mid_chain(failing), pid], tmp_path)
        runner.engine = engine
        summary = runner.run(DAY0, DAY0)
    in_parent = set(lake.read("features", f"{D}.normalized")["value"].to_pylist()) == {os.getpid()}
    assert in_parent == (workers == 1)
    assert time.perf_counter() - began >= 0.01  # one back-off before the retry
    assert summary.status == "success" and counter.read_text() == "2"
    assert lake.read("clean", D).num_rows == 2 * n
    after = next(r for r in summary.runs if r.task == "after")
    assert {s.series_id: s.rows_out for s in after.series} == {"a/b/bad": n, "a/b/good": n}


def _copy_lake(src: Lake, dst: Lake) -> None:
    dst.write("raw", D, src.read("raw", D))


@pytest.mark.parametrize("days_per_run", [1, 2])
def test_chained_execution_equals_task_by_task_execution(tmp_path: Path, days_per_run: int) -> None:
    from sparkhu.pipeline.daily import daily_dag  # the real tasks: look-backs, metadata, several inputs

    rng = np.random.default_rng(5)
    minutes = np.arange(2 * 1440)
    ids, ts, values = [], [], []
    names = ["a/m/P", "a/n/P", "a/o/P"]
    for k, name in enumerate(names):
        v = 500 + 100 * k + 200 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, 5, len(minutes))
        v[100 + k] = 9_000.0
        keep = np.ones(len(minutes), bool)
        keep[600 + 50 * k : 620 + 50 * k] = False
        ids += [name] * int(keep.sum())
        ts.append(T0_US + minutes[keep] * MIN_US)
        values.append(v[keep])
    raw = points(ids, np.concatenate(ts), np.concatenate(values))
    dag = daily_dag()
    lakes = {}
    for mode in ("chained", "one_by_one"):
        lake = Lake(tmp_path / mode / "lake")
        lake.write("raw", D, raw)
        catalog = Catalog(f"sqlite:///{tmp_path / mode / 'catalog.db'}")
        for name in names:
            catalog.upsert_series(SeriesInfo.of(name, unit="W", value_min=0.0, value_max=10_000.0))
        dags = (
            [dag]
            if mode == "chained"
            else [dag.subset([t.name], with_downstream=False) for t in dag.ordered()]
        )
        for part in dags:
            runner = PipelineRunner(
                lake, catalog, LocalEngine(1), part, dataset=D, retries=0, days_per_run=days_per_run
            )
            assert runner.run(DAY0, DAY0 + timedelta(days=1)).status == "success"
        lakes[mode] = lake
        catalog.close()
    chained, single = lakes["chained"], lakes["one_by_one"]
    assert chained.datasets() == single.datasets()
    assert len(chained.datasets()) >= 14, chained.datasets()
    for zone, name in chained.datasets():
        if zone == "quarantine":
            continue
        a, b = chained.read_table(zone, name).to_pandas(), single.read_table(zone, name).to_pandas()
        assert len(a) > 0 or name.endswith("anomalies"), name
        pd.testing.assert_frame_equal(a, b, obj=f"{zone}/{name}")


class Recorder(PipelineHooks):
    """Notes every moment of a run it is told of, and what the lake holds when a task-day ends."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.events: list[tuple[str, ...]] = []

    def before_run(self, dataset: str, plan: Sequence[PlanStep]) -> None:
        self.events.append(("before_run", dataset, str(len(plan))))

    def before_task_day(self, task: Task, start: datetime, end: datetime) -> None:
        self.events.append(("before", task.name))

    def on_task_error(self, task: Task, start: datetime, error: str, attempt: int) -> None:
        self.events.append(("error", task.name, str(attempt), error))

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        written = sum(self.lake.read_table(*where.split("/")).num_rows for _, where in _writes(task))
        self.events.append(("after", task.name, run.status, str(written)))

    def after_run(self, summary: RunSummary) -> None:
        self.events.append(("after_run", summary.status, str(len(summary.runs))))


def _writes(task: Task) -> list[tuple[str, str]]:
    return [(d, f"analysis/{D}.{d}" if d == "means" else f"clean/{D}") for d in task.outputs.values()]


def test_hooks_are_told_of_each_moment_of_a_run(lake: Lake, catalog: Catalog, tmp_path: Path) -> None:
    _raw(lake, ["a/b/x"], days=1)
    counter = tmp_path / "calls"
    dag = [
        Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"}),
        Task(
            "flaky",
            flaky_all,
            {"points": "clean"},
            {"means": "means"},
            scope="all",
            params={"counter": str(counter), "fail_times": 1},
        ),
    ]
    recorder = Recorder(lake)
    summary = _runner(lake, catalog, dag, tmp_path, hooks=[recorder]).run(DAY0, DAY0)
    assert summary.status == "success"
    events = recorder.events
    assert events[0] == ("before_run", D, "2") and events[-1] == ("after_run", "success", "2")
    copy = [e for e in events if e[1] == "copy"]  # its writes and hooks overlap the next stage
    assert copy == [("before", "copy"), ("after", "copy", "success", "48")]  # told once written
    assert [e for e in events if e[1] == "flaky"] == [
        ("before", "flaky"),
        ("error", "flaky", "1", "RuntimeError: transient failure 1"),
        ("after", "flaky", "success", "1"),
    ]
    assert len(catalog.runs(kind="pipeline", limit=10)) == 2  # run records come with every runner


class FlakyDatasets(Datasets):
    """Datasets whose first replace of ``clean`` fails, as a full disk would."""

    failures = 0

    def replace(self, name: str, table: pa.Table, days: Sequence[date]) -> list[str]:
        if name == "clean" and not self.failures:
            self.failures += 1
            raise LakeError(f"cannot write {name}: disk full")
        return super().replace(name, table, days)


def test_a_failed_write_is_retried_until_every_output_is_written(
    lake: Lake, catalog: Catalog, tmp_path: Path
) -> None:
    _raw(lake, ["a/b/x", "a/b/y"], days=1)
    task = Task("split", examples.passthrough, {"points": "raw"}, {"points": "clean"})
    recorder = Recorder(lake)
    runner = _runner(lake, catalog, [task], tmp_path, datasets=FlakyDatasets(lake, D), hooks=[recorder])
    run = runner.run(DAY0, DAY0).runs[0]
    assert (run.status, run.attempts) == ("success", 1)
    assert ("error", "split", "1", "cannot write clean: disk full") in recorder.events
    assert lake.read("clean", D).num_rows == 2 * 48
