"""The words of the DAG generator: a DAG and its tasks as sparkhu commands, and what builders get.

A :class:`DagSpec` is what one generated Airflow file holds: an id, a schedule, the run settings
(catch-up, retries, timeouts) and its :class:`AirflowTask`\\ s, each one sparkhu command with the
tasks it waits for. A command names the run's day by placeholders that the rendered file turns
into Airflow templates, evaluated when the task runs (never when the file is parsed):
``{day}`` is the day the run covers (its data interval's first day), ``{until}`` the day after it.
A *builder* (:data:`DagBuilder`) turns a :class:`BuildContext` into specs; builders are found
in :data:`sparkhu.orchestrate.DAG_BUILDERS`.

>>> spec = DagSpec("sparkhu_demo", "10 0 * * *", date(2024, 1, 1), (
...     AirflowTask("a", ("pipeline", "run", "--day", "{day}")),
...     AirflowTask("b", ("pipeline", "run", "--day", "{day}"), upstream=("a",)),
... ))
>>> [t.task_id for t in spec.ordered()], spec.edges()
(['a', 'b'], [('a', 'b')])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from sparkhu.config import Settings
from sparkhu.errors import ConfigError

if TYPE_CHECKING:
    from sparkhu.app.runtime import Runtime

PLACEHOLDERS = ("{day}", "{until}")
"""What a command may name of its run: the day it covers and the day after (both ``YYYY-MM-DD``)."""

GroupBy = Literal["task", "task-group"]


@dataclass(frozen=True)
class AirflowTask:
    """One Airflow task: the sparkhu arguments it runs (after the global options) and its upstream."""

    task_id: str
    argv: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class DagSpec:
    """One generated Airflow DAG (one file). ``schedule`` is a cron expression (UTC)."""

    dag_id: str
    schedule: str
    start_date: date
    tasks: tuple[AirflowTask, ...]
    description: str = ""
    tags: tuple[str, ...] = ("sparkhu",)
    catchup: bool = True
    retries: int = 0
    retry_delay_s: float = 300.0
    task_timeout_s: float = 6 * 3600.0
    run_timeout_s: float | None = None
    deadline_s: float | None = None
    """Seconds after a run is queued by which it should be done (Airflow 3's deadline alert)."""
    deadline_callback: str | None = None
    """Dotted path of the callable Airflow calls when a run misses ``deadline_s``."""
    max_active_runs: int = 1
    """Days of one DAG run one after the other, as sparkhu's own scheduler runs them (a task's
    look-back reads the days before it)."""
    timezone: str = "UTC"
    """The time zone ``schedule`` is read in (an IANA name)."""

    def __post_init__(self) -> None:
        ids = [t.task_id for t in self.tasks]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"DAG {self.dag_id}: a task id is used twice ({', '.join(ids)})")
        for task in self.tasks:
            unknown = [u for u in task.upstream if u not in ids]
            if unknown:
                raise ConfigError(f"DAG {self.dag_id}: task {task.task_id} waits for unknown {unknown}")
        if (self.deadline_s is None) != (self.deadline_callback is None):
            raise ConfigError(
                f"DAG {self.dag_id}: a deadline needs both [airflow] deadline_s and deadline_callback"
            )
        self.ordered()  # a cycle fails here, naming its tasks

    def ordered(self) -> list[AirflowTask]:
        """The tasks upstream first (stable: in the given order where free)."""
        done: set[str] = set()
        out: list[AirflowTask] = []
        remaining = list(self.tasks)
        while remaining:
            ready = [t for t in remaining if set(t.upstream) <= done]
            if not ready:
                raise ConfigError(
                    f"DAG {self.dag_id}: tasks {', '.join(t.task_id for t in remaining)} wait for each other"
                )
            out.extend(ready)
            done.update(t.task_id for t in ready)
            remaining = [t for t in remaining if t.task_id not in done]
        return out

    def edges(self) -> list[tuple[str, str]]:
        """``(upstream, downstream)`` pairs, sorted."""
        return sorted((u, t.task_id) for t in self.tasks for u in t.upstream)


@dataclass
class BuildContext:
    """What a builder gets: the settings, the runtime (for generation-time look-ups only: the files
    it leads to never touch it) and the user's choices."""

    settings: Settings
    runtime: Runtime
    datasets: Sequence[str] = ()
    """The source datasets to generate for (``<source>_<measurement>``)."""
    group_by: GroupBy = "task"


DagBuilder = Callable[[BuildContext], list[DagSpec]]
"""``builder(context) -> [DagSpec, ...]``: registered in :data:`sparkhu.orchestrate.DAG_BUILDERS`."""


def run_settings(settings: Settings) -> dict[str, Any]:
    """The run settings every generated DAG takes from sparkhu's: retries, timeouts, deadline.

    >>> run_settings(Settings.load(toml_path=None, env={}))["retries"] >= 0
    True
    """
    return {
        "retries": settings.pipeline.retries,
        "retry_delay_s": settings.airflow.retry_delay_s,
        "task_timeout_s": settings.airflow.task_timeout_s,
        "run_timeout_s": settings.airflow.run_timeout_s,
        "deadline_s": settings.airflow.deadline_s,
        "deadline_callback": settings.airflow.deadline_callback,
    }


def cron_of(schedule: str) -> str:
    """A sparkhu schedule (``HH:MM`` UTC or a five-field cron) as a cron expression.

    >>> cron_of("00:10"), cron_of("10 */6 * * *")
    ('10 0 * * *', '10 */6 * * *')
    """
    clock = re.fullmatch(r"(\d\d):(\d\d)", schedule)
    return f"{int(clock.group(2))} {int(clock.group(1))} * * *" if clock else schedule


def dag_id(*parts: str) -> str:
    """An Airflow DAG id of ``parts`` (letters, digits, ``_ . -``; others become ``_``).

    >>> dag_id("sparkhu", "ampds2_electricity", "pipeline")
    'sparkhu_ampds2_electricity_pipeline'
    """
    return "_".join(re.sub(r"[^A-Za-z0-9_.\-]", "_", p) for p in parts if p)


def group_tasks(
    tasks: Sequence[AirflowTask],
    groups: Mapping[str, Sequence[str]],
    argv_of: Callable[[list[str]], tuple[str, ...]],
) -> tuple[AirflowTask, ...]:
    """One task per group of ``tasks`` (a task in no group is a group of its own), running
    ``argv_of(names of its tasks)`` after the groups its tasks wait for.

    >>> tasks = [AirflowTask("a", ()), AirflowTask("b", (), ("a",)), AirflowTask("c", (), ("b",))]
    >>> grouped = group_tasks(tasks, {"first": ["a", "b"]}, lambda names: tuple(names))
    >>> [(t.task_id, t.argv, t.upstream) for t in grouped]
    [('first', ('a', 'b'), ()), ('c', ('c',), ('first',))]
    """
    known = {t.task_id for t in tasks}
    group_of = {name: g for g, names in groups.items() for name in names if name in known}
    for task in tasks:
        group_of.setdefault(task.task_id, task.task_id)
    members: dict[str, list[str]] = {}
    for task in tasks:
        members.setdefault(group_of[task.task_id], []).append(task.task_id)
    by_id = {t.task_id: t for t in tasks}
    out = []
    for group, names in members.items():
        upstream = {group_of[u] for name in names for u in by_id[name].upstream} - {group}
        ordered = tuple(sorted(upstream, key=list(members).index))
        out.append(AirflowTask(group, argv_of(names), ordered, doc=", ".join(names)))
    return tuple(out)
