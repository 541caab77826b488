"""Hooks around the runner: what happens besides scheduling (records, reports, progress) hangs here.

:class:`PipelineHooks` names the moments of a run, after Kedro's hook specifications (without
a plugin manager): :meth:`~PipelineHooks.before_run`, :meth:`~PipelineHooks.before_task_day`,
:meth:`~PipelineHooks.on_task_error` (a failed attempt), :meth:`~PipelineHooks.after_task_day`
(a task-day finished, its outputs written) and :meth:`~PipelineHooks.after_run`. Every method
does nothing by default; an implementation overrides the ones it needs. The runner calls them
through a :class:`HookRelay`: in registration order, one call at a time (writer threads finish
task-days concurrently). A *task-day* is one task over one interval of ``days_per_run`` days.

Implementations: :class:`~sparkhu.pipeline.records.RunRecords` (run records in the catalog,
always registered: catch-up reads them), :class:`~sparkhu.pipeline.reports.ReportWriter`
(JSON + HTML per task-day) and :class:`ProgressHook` (a callback per finished task-day).

>>> from datetime import UTC, datetime
>>> from sparkhu.pipeline import examples
>>> from sparkhu.pipeline.base import Task
>>> class Count(PipelineHooks):
...     def __init__(self) -> None:
...         self.finished = 0
...     def after_task_day(self, task: Task, run: TaskRun) -> None:
...         self.finished += 1
>>> count, seen = Count(), []
>>> relay = HookRelay([count, ProgressHook(lambda run: seen.append(run.task))])
>>> task = Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"})
>>> day = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
>>> relay.after_task_day(task, TaskRun("copy", *day))
>>> count.finished, seen
(1, ['copy'])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from sparkhu.pipeline.base import Task
from sparkhu.pipeline.runs import PlanStep, RunSummary, TaskRun


class PipelineHooks:
    """The moments of a run a hook may act on; each method is a no-op unless overridden."""

    def before_run(self, dataset: str, plan: Sequence[PlanStep]) -> None:
        """A run of ``plan`` over source dataset ``dataset`` starts (not called for a dry run)."""

    def before_task_day(self, task: Task, start: datetime, end: datetime) -> None:
        """``task`` starts on ``[start, end)`` (the tasks of a chain start together)."""

    def on_task_error(self, task: Task, start: datetime, error: str, attempt: int) -> None:
        """Attempt ``attempt`` (from 1) of ``task`` on the interval from ``start`` failed with
        ``error``: its computation (the whole chain's, for a chained task) or its writes. It is
        retried while attempts remain; failed series are reported in the run, not here."""

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        """``task`` finished ``run`` (success or failed), its outputs written."""

    def after_run(self, summary: RunSummary) -> None:
        """The run ended; every task-day of ``summary`` is finished and written."""


class HookRelay(PipelineHooks):
    """Calls every one of ``hooks``, in order, one call at a time."""

    def __init__(self, hooks: Iterable[PipelineHooks]) -> None:
        self.hooks = list(hooks)
        self._lock = threading.Lock()

    def before_run(self, dataset: str, plan: Sequence[PlanStep]) -> None:
        with self._lock:
            for hook in self.hooks:
                hook.before_run(dataset, plan)

    def before_task_day(self, task: Task, start: datetime, end: datetime) -> None:
        with self._lock:
            for hook in self.hooks:
                hook.before_task_day(task, start, end)

    def on_task_error(self, task: Task, start: datetime, error: str, attempt: int) -> None:
        with self._lock:
            for hook in self.hooks:
                hook.on_task_error(task, start, error, attempt)

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        with self._lock:
            for hook in self.hooks:
                hook.after_task_day(task, run)

    def after_run(self, summary: RunSummary) -> None:
        with self._lock:
            for hook in self.hooks:
                hook.after_run(summary)


class ProgressHook(PipelineHooks):
    """Calls ``on_progress`` with each finished :class:`~sparkhu.pipeline.runs.TaskRun`."""

    def __init__(self, on_progress: Callable[[TaskRun], None]) -> None:
        self.on_progress = on_progress

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        self.on_progress(run)
