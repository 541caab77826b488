"""One run of a study: the Spark driver of one job under one setting, in its own process.

PySpark allows one session per process and a study may run settings side by side, so
every run is ``python -m sparkhu.sparkstudy.driver SPEC.json``. The driver starts its
session with the setting's properties and event logging on, runs the job in a thread and,
meanwhile, samples every ``interval_s``:

* its own REST API (``/api/v1/applications/<id>/executors``) for the running executors, and
  ``/metrics/json`` for the executors dynamic allocation wants (static: the setting's count),
  so pending = wanted − running;
* the executors' processes (``/proc``: the executor JVM and its Python workers) for CPU (% of
  the executor's cores) and resident memory — the executors of a local cluster run here.

If no executor has started after ``pend_timeout_s`` the run stops with a diagnosis (what the
request exceeded on which worker, from the master's status), never hangs. The result (JSON)
goes to ``out``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sparkhu.sparkstudy.cluster import workers_of
from sparkhu.sparkstudy.jobs import run_spark
from sparkhu.sparkstudy.settings import placement, setting_from_dict

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _get(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def _processes() -> dict[int, tuple[int, str, int, int]]:
    """pid → (parent pid, command line, CPU ticks, resident pages) of every readable process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), cmd, int(fields[11]) + int(fields[12]), int(fields[21]))
    return table


class Sampler(threading.Thread):
    """Samples executors (REST) and their processes (/proc) until stopped."""

    def __init__(
        self, ui: str, app_id: str, wanted: int, dynamic: bool, cores: int, interval_s: float
    ) -> None:
        super().__init__(daemon=True)
        self.ui, self.app_id, self.wanted, self.dynamic = ui.rstrip("/"), app_id, wanted, dynamic
        self.cores, self.interval_s = max(cores, 1), interval_s
        self.timeline: list[dict[str, float]] = []
        self.usage: dict[str, list[tuple[float, float]]] = {}  # executor → [(cpu %, rss MB)]
        self.summary: list[dict[str, Any]] = []
        self.last_error = ""
        self._done = threading.Event()
        self._last: dict[int, tuple[float, int]] = {}
        self.t0 = time.monotonic()

    def stop(self) -> None:
        """End sampling after the current sample."""
        self._done.set()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._done.is_set():
            try:
                self.sample()
            except Exception as exc:  # a sample lost to a busy UI is not worth the run
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._done.wait(self.interval_s)

    def sample(self) -> None:
        """One sample of executors (running, wanted, pending) and their processes."""
        base = f"{self.ui}/api/v1/applications/{self.app_id}"
        executors = [
            e for e in _get(f"{base}/executors") if e.get("id") != "driver" and e.get("isActive", True)
        ]
        running = len(executors)
        wanted = self.wanted
        if self.dynamic:
            gauges = _get(f"{self.ui}/metrics/json/").get("gauges", {})
            targets = [v.get("value", 0) for k, v in gauges.items() if k.endswith("numberTargetExecutors")]
            wanted = int(targets[0]) if targets else running
        t = time.monotonic() - self.t0
        self.timeline.append(
            {"t": round(t, 2), "running": running, "wanted": wanted, "pending": max(wanted - running, 0)}
        )
        self._sample_processes({str(e["id"]) for e in executors})

    def _sample_processes(self, ids: set[str]) -> None:
        table = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        now = time.monotonic()
        for pid, (_, cmd, _, _) in table.items():
            if "CoarseGrainedExecutorBackend" not in cmd or self.app_id not in cmd:
                continue
            args = cmd.split()
            eid = args[args.index("--executor-id") + 1] if "--executor-id" in args else str(pid)
            if eid not in ids:
                continue
            tree, stack = [], [pid]
            while stack:
                p = stack.pop()
                tree.append(p)
                stack.extend(children.get(p, []))
            ticks = sum(table[p][2] for p in tree if p in table)
            rss_mb = sum(table[p][3] for p in tree if p in table) * _PAGE / 2**20
            last = self._last.get(pid)
            self._last[pid] = (now, ticks)
            if last is not None and now > last[0]:
                cpu = (ticks - last[1]) / _TICK / (now - last[0]) / self.cores * 100
                self.usage.setdefault(eid, []).append((round(cpu, 1), round(rss_mb, 1)))

    def collect_summary(self) -> None:
        """The REST API's summary of every executor, taken before the application ends."""
        try:
            self.summary = _get(f"{self.ui}/api/v1/applications/{self.app_id}/allexecutors")
        except Exception:
            self.summary = []


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one job under one setting as ``spec`` says; return the result record."""
    from pyspark.sql import SparkSession

    setting = setting_from_dict(spec["setting"])
    event_dir = Path(spec["event_dir"])
    event_dir.mkdir(parents=True, exist_ok=True)
    conf = {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
        "spark.log.level": "ERROR",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.port": "0",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": event_dir.resolve().as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.logStageExecutorMetrics": "true",
        "spark.sql.shuffle.partitions": str(spec.get("shuffle_partitions", 4)),
        "spark.sql.files.maxPartitionBytes": str(spec.get("split_bytes", 32 * 2**20)),
        "spark.sql.session.timeZone": "UTC",
        **setting.spark_conf(),
    }
    builder = SparkSession.builder.master(spec["master"]).appName(f"sparkstudy:{spec['job']}:{setting.name}")
    for key, value in conf.items():
        builder = builder.config(key, value)
    started = time.monotonic()
    session = builder.getOrCreate()
    context = session.sparkContext
    context.pythonExec = sys.executable
    app_id = context.applicationId
    sampler = Sampler(
        str(context.uiWebUrl), app_id, setting.executor_instances, setting.dynamic_allocation,
        setting.executor_cores, float(spec.get("interval_s", 0.5)),
    )  # fmt: skip
    sampler.start()
    outcome: dict[str, Any] = {}

    def job() -> None:
        try:
            outcome["result"] = run_spark(session, spec["job"], spec["form"], spec["input"])
        except Exception as exc:
            outcome["error"] = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )

    worker = threading.Thread(target=job, daemon=True)
    worker.start()
    status, diagnosis = "ok", ""
    pend_timeout = float(spec.get("pend_timeout_s", 60))
    run_timeout = float(spec.get("run_timeout_s", 3600))
    tracker = context._jsc.sc().statusTracker()
    ever_started = False
    while worker.is_alive():
        waited = time.monotonic() - started
        # the driver's own tracker, not the REST API: a loaded machine's UI may answer late
        ever_started = ever_started or len(tracker.getExecutorInfos()) > 1  # the driver counts as one
        if not ever_started and waited > pend_timeout:
            status = "timeout"
            diagnosis = _diagnose(spec, setting, pend_timeout)
            break
        if waited > run_timeout:
            status, diagnosis = "timeout", f"the job did not finish within {run_timeout:g} s"
            break
        worker.join(0.2)
    sampler.collect_summary()
    sampler.stop()
    if status != "ok":
        context.cancelAllJobs()
        worker.join(10)
    elif "error" in outcome:
        status, diagnosis = "failed", outcome["error"]
    session.stop()
    sampler.join(5)
    result = outcome.get("result")
    return {
        "setting": setting.to_dict(),
        "status": status,
        "diagnosis": diagnosis,
        "app_id": app_id,
        "event_log": str(_eventlog_path(event_dir, app_id)),
        "job": spec["job"],
        "form": spec["form"],
        "counts": result.counts if result is not None and status == "ok" else {},
        "job_s": result.seconds if result is not None else None,
        "timeline": sampler.timeline,
        "usage": sampler.usage,
        "executors": sampler.summary,
        "sampling_error": sampler.last_error,
    }


def _eventlog_path(event_dir: Path, app_id: str) -> Path:
    """The application's event log: one file, or a rolling log's directory."""
    rolling = event_dir / f"eventlog_v2_{app_id}"
    return rolling if rolling.exists() else event_dir / app_id


def _diagnose(spec: dict[str, Any], setting: Any, waited_s: float) -> str:
    """Why no executor started: the request against each worker's free resources."""
    head = f"no executor started within {waited_s:g} s"
    ui = spec.get("master_ui")
    if not ui:
        return head + "; are workers registered with free cores and memory?"
    try:
        workers = workers_of(ui)
    except Exception as exc:
        return f"{head}; the master's status is unavailable ({exc})"
    return f"{head}: {placement(setting, workers, free=True).reason}"


def main(argv: list[str]) -> int:
    """``python -m sparkhu.sparkstudy.driver SPEC.json``: run and write the result to ``spec['out']``."""
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    tmp = Path(spec["out"] + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(spec["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
