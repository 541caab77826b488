"""A resource study: one job under every setting of a grid, measured and costed.

:func:`run_study` first places each setting on the cluster's workers
(:func:`~sparkhu.sparkstudy.settings.placement`): a setting none of whose executors fit is
reported as ``will pend`` with the reason and not run; a setting some of whose executors
pend runs, with the reason noted. Each run is a driver process
(:mod:`sparkhu.sparkstudy.driver`); ``parallel`` runs them side by side (they then compete
for the workers, as the seed study's Airflow runs did). Per run, from the driver's samples
of the REST API and of the executors' processes, and from the event log:

``wall_s`` the application's span; ``job_s`` the job's; ``executors_max`` and ``pending_max``;
``executor_s`` the executors' alive time, ``vcpu_s`` and ``gb_s`` what they reserved;
``cpu_avg_pct``/``cpu_max_pct`` per executor (% of its cores); ``mem_avg_mb``/``mem_max_mb``
resident memory per executor (JVM and Python workers); ``task_s``, ``gc_s``, shuffle MB;
``cost`` from the price table and ``time_x_cost`` (the seed's ranking).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sparkhu.errors import SparkhuError
from sparkhu.sparkstudy.eventlog import AppLog, read_eventlog
from sparkhu.sparkstudy.jobs import check_job
from sparkhu.sparkstudy.settings import Grid, Placement, Prices, Setting, WorkerState, placement

COLUMNS = (
    "setting", "executor_cores", "executor_memory_mb", "executor_instances", "dynamic_allocation",
    "status", "reason", "wall_s", "job_s", "executors_max", "pending_max", "executor_s", "vcpu_s", "gb_s",
    "cpu_avg_pct", "cpu_max_pct", "mem_avg_mb", "mem_max_mb", "task_s", "gc_s",
    "shuffle_read_mb", "shuffle_write_mb", "cost", "time_x_cost", "counts", "app_id", "event_log",
)  # fmt: skip


@dataclass
class Study:
    """A study's identity, inputs and one row per setting (plus each run's executor timeline)."""

    id: str
    job: str
    form: str
    input: str
    started: datetime
    prices: Prices
    rows: list[dict[str, Any]] = field(default_factory=list)
    timelines: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def best(self) -> dict[str, Any] | None:
        """The finished run with the lowest time × cost."""
        done = [r for r in self.rows if r["status"] == "ok"]
        return min(done, key=lambda r: r["time_x_cost"]) if done else None


def run_study(
    job: str,
    grid: Grid,
    input_uri: str,
    *,
    master: str,
    master_ui: str,
    workers: Sequence[WorkerState],
    workdir: str | Path,
    form: str = "udf",
    parallel: bool = False,
    pend_timeout_s: float = 60.0,
    split_bytes: int = 32 * 2**20,
    run_impossible: bool = False,
    progress: Callable[[str, dict[str, Any] | None], None] | None = None,
) -> Study:
    """Run ``job`` under every setting of ``grid`` on the cluster at ``master``; return the study."""
    check_job(job, form)
    if form == "embedded":
        raise SparkhuError("a study runs Spark forms: --form udf or vectorised")
    study = Study(
        f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", job, form, input_uri,
        datetime.now(UTC).replace(microsecond=0), grid.prices,
    )  # fmt: skip
    workdir = Path(workdir) / study.id
    plans = {s.name: placement(s, workers) for s in grid.settings}
    runnable = []
    for setting in grid.settings:
        plan = plans[setting.name]
        if plan.will_pend and not run_impossible:
            row = _row(setting, status="will pend", reason=plan.reason)
            study.rows.append(row)
            if progress:
                progress(setting.name, row)
        else:
            runnable.append(setting)

    def one(setting: Setting) -> dict[str, Any]:
        if progress:
            progress(setting.name, None)
        row, timeline = run_setting(
            setting, job, form, input_uri, master=master, master_ui=master_ui, workdir=workdir,
            prices=grid.prices, plan=plans[setting.name], pend_timeout_s=pend_timeout_s,
            split_bytes=split_bytes,
        )  # fmt: skip
        study.timelines[setting.name] = timeline
        if progress:
            progress(setting.name, row)
        return row

    if parallel and len(runnable) > 1:
        with ThreadPoolExecutor(len(runnable)) as pool:
            study.rows.extend(pool.map(one, runnable))
    else:
        study.rows.extend(one(s) for s in runnable)
    order = [s.name for s in grid.settings]
    study.rows.sort(key=lambda r: order.index(r["setting"]))
    return study


def run_setting(
    setting: Setting,
    job: str,
    form: str,
    input_uri: str,
    *,
    master: str,
    master_ui: str,
    workdir: str | Path,
    prices: Prices | None = None,
    plan: Placement | None = None,
    pend_timeout_s: float = 60.0,
    run_timeout_s: float = 3600.0,
    split_bytes: int = 32 * 2**20,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """One run in its own driver process: the study row and the executors' timeline."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"{setting.name}.spec.json"
    out = workdir / f"{setting.name}.result.json"
    spec = {
        "master": master, "master_ui": master_ui, "setting": setting.to_dict(), "job": job, "form": form,
        "input": input_uri, "event_dir": str(workdir / "events"), "out": str(out),
        "pend_timeout_s": pend_timeout_s, "run_timeout_s": run_timeout_s, "split_bytes": split_bytes,
    }  # fmt: skip
    spec_path.write_text(json.dumps(spec))
    log = workdir / f"{setting.name}.driver.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "sparkhu.sparkstudy.driver", str(spec_path)],
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
        try:
            code = process.wait(timeout=pend_timeout_s + run_timeout_s + 120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = -9
    reason = plan.reason if plan is not None and plan.pending else ""
    if code != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        return _row(setting, status="failed", reason=f"driver exited with {code}: {' | '.join(tail)}"), []
    result = json.loads(out.read_text())
    if result["status"] != "ok":
        return _row(
            setting, status=result["status"], reason=result["diagnosis"], app_id=result["app_id"]
        ), result["timeline"]
    app = read_eventlog(result["event_log"])
    return measure(setting, result, app, prices or Prices(), reason), result["timeline"]


def measure(
    setting: Setting, result: dict[str, Any], app: AppLog, prices: Prices, reason: str = ""
) -> dict[str, Any]:
    """The study row of a finished run: the driver's samples and the event log, costed."""
    alive = app.executor_seconds()
    executor_s = sum(alive.values())
    vcpu_s = sum(alive[e] * app.executors[e].cores for e in alive)
    gb_s = executor_s * setting.executor_memory_mb / 1024
    usage = [u for samples in result.get("usage", {}).values() for u in samples]
    if usage:
        cpu = [c for c, _ in usage]
        mem = [m for _, m in usage]
        cpu_avg, cpu_max = sum(cpu) / len(cpu), max(cpu)
        mem_avg, mem_max = sum(mem) / len(mem), max(mem)
    else:  # executors elsewhere: CPU from the tasks' CPU time, memory from the JVM peaks
        cpu_avg = cpu_max = 100 * sum(t.cpu_ns for t in app.tasks) / 1e9 / vcpu_s if vcpu_s else 0.0
        heaps = [p.get("JVMHeapMemory", 0) / 2**20 for p in app.peaks.values()]
        mem_avg, mem_max = (sum(heaps) / len(heaps), max(heaps)) if heaps else (0.0, 0.0)
    timeline = result.get("timeline", [])
    cost = prices.cost(vcpu_s, gb_s)
    return _row(
        setting,
        status="ok",
        reason=reason,
        wall_s=round(app.wall_s, 3),
        job_s=round(result.get("job_s") or 0.0, 2),
        executors_max=max([_most_at_once(app), *(int(p["running"]) for p in timeline)]),
        pending_max=max([0, *(int(p["pending"]) for p in timeline)]),
        executor_s=round(executor_s, 2),
        vcpu_s=round(vcpu_s, 2),
        gb_s=round(gb_s, 2),
        cpu_avg_pct=round(cpu_avg, 1),
        cpu_max_pct=round(cpu_max, 1),
        mem_avg_mb=round(mem_avg, 1),
        mem_max_mb=round(mem_max, 1),
        task_s=round(sum(t.duration_ms for t in app.tasks) / 1000, 2),
        gc_s=round(sum(t.gc_ms for t in app.tasks) / 1000, 2),
        shuffle_read_mb=round(sum(t.shuffle_read_bytes for t in app.tasks) / 1e6, 3),
        shuffle_write_mb=round(sum(t.shuffle_write_bytes for t in app.tasks) / 1e6, 3),
        # significant digits, not decimals: a small study's cost is a fraction of a cent
        cost=float(f"{cost:.6g}"),
        time_x_cost=float(f"{app.wall_s * cost:.6g}"),
        counts=json.dumps(result.get("counts", {}), sort_keys=True),
        app_id=result.get("app_id", ""),
        event_log=result.get("event_log", ""),
    )


def _most_at_once(app: AppLog) -> int:
    """The most executors alive at the same time (dynamic allocation adds and removes them)."""
    changes = sorted(
        [(e.added_ms, 1) for e in app.executors.values()]
        + [(e.removed_ms if e.removed_ms is not None else app.end_ms, -1) for e in app.executors.values()],
        key=lambda change: (change[0], change[1]),  # a removal before an addition at the same ms
    )
    alive = most = 0
    for _, step in changes:
        alive += step
        most = max(most, alive)
    return most


def _row(setting: Setting, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        setting=setting.name,
        executor_cores=setting.executor_cores,
        executor_memory_mb=setting.executor_memory_mb,
        executor_instances=setting.executor_instances,
        dynamic_allocation=setting.dynamic_allocation,
        reason="",
        counts="{}",
        app_id="",
        event_log="",
    )
    row.update(values)
    return row
