"""Advice from one run's event log: critical path, ideal executor count, time at other counts.

What Sparklens did, on Spark 4 event logs. The run's tasks are replayed on ``n`` executors of
the same cores (:func:`simulate`): inside each job, stages start when their parent stages
end, and a stage's tasks (their measured durations, in launch order) go to the first free
slot; jobs follow one another. The time outside jobs (driver work, waiting for executors) is
kept as measured. So the predicted wall time at ``n`` executors is
``wall − busy(observed) + busy(n)``, where *busy* is the time jobs ran tasks.

The *critical path* is the busy time with unlimited executors (every stage as long as its
longest task); the *ideal executor count* is the fewest executors whose busy time is within
``slack`` (10 %) of the time with one executor per task of the widest stage. Pending
executors are diagnosed from the run's own properties against the workers (if given): how
many of the requested executors fit and which resource of which worker fell short. The
recommended setting keeps the executor's cores and memory where they fit, shrinks them where
they do not, and asks for the ideal count capped at what the workers hold.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sparkhu.sparkstudy.eventlog import AppLog, Task, read_eventlog
from sparkhu.sparkstudy.settings import Setting, WorkerState, parse_memory, placement


@dataclass
class Advice:
    """The advisor's reading of one run."""

    app_id: str
    observed_executors: int
    cores_per_executor: int
    wall_s: float
    busy_s: float
    critical_path_s: float
    ideal_executors: int
    predictions: list[tuple[int, float]]  # (executors, predicted wall s)
    pending: str
    setting: Setting
    recommended: Setting
    notes: list[str] = field(default_factory=list)

    def predicted_wall(self, executors: int) -> float:
        """The predicted wall time at ``executors`` (any count, not only those listed)."""
        for n, seconds in self.predictions:
            if n == executors:
                return seconds
        raise KeyError(executors)

    def lines(self) -> list[str]:
        """The advice as plain lines for a terminal."""
        out = [
            f"application {self.app_id}: {self.wall_s:.1f} s wall, {self.busy_s:.1f} s running tasks, "
            f"{self.observed_executors} executor(s) of {self.cores_per_executor} core(s)",
            f"critical path (unlimited executors): {self.critical_path_s:.1f} s of tasks",
            f"ideal executor count: {self.ideal_executors}",
            "predicted wall time: " + ", ".join(f"{n} → {s:.1f} s" for n, s in self.predictions),
            f"pending executors: {self.pending}",
            f"recommended: {self.recommended.executor_instances} executor(s) × "
            f"{self.recommended.executor_cores} core(s), {self.recommended.executor_memory_mb} MB"
            + (", dynamic allocation" if self.recommended.dynamic_allocation else ""),
        ]
        return out + self.notes


def advise(
    source: AppLog | str | Path,
    *,
    workers: Sequence[WorkerState] | None = None,
    counts: Sequence[int] | None = None,
    slack: float = 0.10,
) -> Advice:
    """Advice for the run in ``source`` (an :class:`AppLog` or an event log path)."""
    app = source if isinstance(source, AppLog) else read_eventlog(source)
    tasks = [t for t in app.tasks if not t.failed]
    used = sorted({t.executor for t in tasks})
    setting = setting_of(app)
    cores = setting.executor_cores
    observed = max(len(used), 1)
    busy = observed_busy(app)
    widest = max([1, *(_stage_sizes(tasks).values())])
    enough = max(1, math.ceil(widest / cores))
    unlimited = simulate(app, enough * 1000, cores)
    best = simulate(app, enough, cores)
    ideal = next(n for n in range(1, enough + 1) if simulate(app, n, cores) <= best * (1 + slack) + 1e-9)
    if counts is None:
        counts = sorted({1, 2, 4, 8, observed, ideal, enough})
    overhead = max(app.wall_s - busy, 0.0)
    predictions = [(n, round(overhead + simulate(app, n, cores), 2)) for n in counts]
    pending, recommended = _pending_and_recommendation(app, setting, ideal, workers)
    notes = []
    if busy > 0:
        model = simulate(app, observed, cores)
        notes.append(f"replaying the run itself gives {model:.1f} s of tasks against {busy:.1f} s measured")
    return Advice(
        app.app_id, observed, cores, round(app.wall_s, 2), round(busy, 2), round(unlimited, 2), ideal,
        predictions, pending, setting, recommended, notes,
    )  # fmt: skip


def setting_of(app: AppLog) -> Setting:
    """The resource setting the application ran with, from its Spark properties."""
    props = app.properties
    seen = [e.cores for e in app.executors.values() if e.cores > 0]
    # the executors' own cores win: local[N] has one executor (the driver) of N cores
    cores = max(set(seen), key=seen.count) if seen else int(props.get("spark.executor.cores", "1") or 1)
    try:
        memory = parse_memory(props.get("spark.executor.memory", "1g"))
    except Exception:
        memory = 1024
    dynamic = props.get("spark.dynamicAllocation.enabled", "false").lower() == "true"
    if dynamic:
        instances = int(props.get("spark.dynamicAllocation.maxExecutors", "0") or 0)
    else:
        instances = int(props.get("spark.executor.instances", "0") or 0)
    if not instances and props.get("spark.cores.max"):
        instances = int(props["spark.cores.max"]) // max(cores, 1)
    if not instances or instances > 10_000:
        instances = max(len(app.executors), 1)
    return Setting("observed", cores, memory, instances, dynamic)


def observed_busy(app: AppLog) -> float:
    """Seconds jobs were running tasks: per job, first task launch to last task finish."""
    by_job: dict[int, list[Task]] = {}
    job_of = {key[0]: stage.job for key, stage in app.stages.items()}
    for task in app.tasks:
        by_job.setdefault(job_of.get(task.stage, -1), []).append(task)
    return sum(
        (max(t.finish_ms for t in ts) - min(t.launch_ms for t in ts)) / 1000 for ts in by_job.values() if ts
    )


def simulate(app: AppLog, executors: int, cores: int) -> float:
    """Seconds of tasks with ``executors`` executors of ``cores`` cores (jobs in sequence)."""
    slots = max(executors * cores, 1)
    by_stage: dict[int, list[Task]] = {}
    for task in app.tasks:
        if not task.failed:
            by_stage.setdefault(task.stage, []).append(task)
    jobs: dict[int, list[int]] = {}
    for (sid, _), stage in app.stages.items():
        if sid in by_stage and sid not in jobs.get(stage.job, []):
            jobs.setdefault(stage.job, []).append(sid)
    parents = {key[0]: stage.parents for key, stage in app.stages.items()}
    total = 0.0
    for stage_ids in jobs.values():
        ends: dict[int, float] = {}
        for sid in sorted(stage_ids):  # parents have smaller ids
            start = max([0.0, *(ends[p] for p in parents.get(sid, []) if p in ends)])
            ends[sid] = start + _makespan(
                [t.duration_ms / 1000 for t in sorted(by_stage[sid], key=_launch)], slots
            )
        total += max(ends.values(), default=0.0)
    return total


def _launch(task: Task) -> int:
    return task.launch_ms


def _makespan(durations: Sequence[float], slots: int) -> float:
    """Greedy list scheduling of ``durations`` (in order) on ``slots`` slots."""
    if slots >= len(durations):
        return max(durations, default=0.0)
    free = [0.0] * slots
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def _stage_sizes(tasks: Sequence[Task]) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for t in tasks:
        sizes[t.stage] = sizes.get(t.stage, 0) + 1
    return sizes


def _pending_and_recommendation(
    app: AppLog, setting: Setting, ideal: int, workers: Sequence[WorkerState] | None
) -> tuple[str, Setting]:
    ran = len(app.executors)
    cores, memory = setting.executor_cores, setting.executor_memory_mb
    if not workers:
        missing = setting.executor_instances - ran
        text = (
            f"{missing} of {setting.executor_instances} requested executor(s) never started "
            "(give the workers to say which resource fell short)"
            if missing > 0 and not setting.dynamic_allocation
            else f"none: {ran} executor(s) started"
        )
        return text, Setting("advised", cores, memory, max(ideal, 1), False)
    plan = placement(setting, workers)
    text = plan.reason if plan.pending else f"none: all {setting.executor_instances} executor(s) fit"
    cores = min(cores, max(w.cores for w in workers))
    memory = min(memory, max(w.memory_mb for w in workers))
    advised = Setting("advised", cores, memory, max(ideal, 1), False)
    fits = placement(advised, workers).fits
    return text, Setting("advised", cores, memory, max(min(ideal, fits), 1), False)
