"""The task graph: tasks bound by the datasets they read and write, checked when built.

A :class:`Dag` is validated on construction: task names and output datasets are unique,
every input is produced by a task or is a declared source dataset (``raw`` by default),
the graph has no cycle and every task function can be pickled (it may run in another
process). Any violation raises :class:`~sparkhu.errors.PipelineError` naming the task or
dataset at fault. :attr:`Dag.levels` groups the tasks into topological levels: the tasks of
one level do not depend on each other and may run in parallel.

>>> from sparkhu.pipeline.base import Task
>>> from sparkhu.pipeline import examples
>>> dag = Dag([
...     Task("b", examples.passthrough, {"points": "a_out"}, {"points": "b_out"}),
...     Task("a", examples.passthrough, {"points": "raw"}, {"points": "a_out"}),
... ])
>>> [[t.name for t in level] for level in dag.levels]
[['a'], ['b']]
>>> [t.name for t in dag.subset(["b"]).tasks]
['b']
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import Task

SOURCES = ("raw",)
QUARANTINE_OUTPUT = "rejects"
"""An output named ``rejects`` goes to the lake's quarantine, not to a dataset."""


class Dag:
    """A validated graph of tasks; ``sources`` are the datasets read but not produced."""

    def __init__(
        self,
        tasks: Iterable[Task],
        *,
        sources: Sequence[str] = SOURCES,
        after: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.tasks: list[Task] = list(tasks)
        self.sources = tuple(sources)
        self.after = {k: tuple(v) for k, v in (after or {}).items()}
        """Extra ordering without a dataset between: task → tasks it must follow (e.g. the task
        that records the series metadata it reads). Names not in the DAG are ignored."""
        self._by_name: dict[str, Task] = {}
        for task in self.tasks:
            if not isinstance(task, Task):
                raise PipelineError(f"expected Task objects, got {type(task).__name__}: {task!r}")
            if task.name in self._by_name:
                raise PipelineError(f"task name {task.name!r} is used twice; task names must be unique")
            self._by_name[task.name] = task
        self.producer: dict[str, str] = {}
        """Dataset → the task that writes it."""
        for task in self.tasks:
            for out, dataset in task.outputs.items():
                if out == QUARANTINE_OUTPUT:
                    continue
                if dataset in self.sources:
                    raise PipelineError(
                        f"task {task.name!r} writes source dataset {dataset!r}; sources are read-only"
                    )
                if dataset in self.producer:
                    raise PipelineError(
                        f"dataset {dataset!r} is written by both {self.producer[dataset]!r} and "
                        f"{task.name!r}; each dataset needs exactly one producer"
                    )
                self.producer[dataset] = task.name
        for task in self.tasks:
            for dataset in task.inputs.values():
                if dataset not in self.producer and dataset not in self.sources:
                    raise PipelineError(
                        f"task {task.name!r} reads dataset {dataset!r}, which no task produces and which is "
                        f"not a source ({', '.join(self.sources)}); add its producer or declare it a source"
                    )
        self.levels: list[list[Task]] = self._levels()
        for task in self.tasks:
            _check_picklable(task)

    def upstream(self, task: Task) -> list[str]:
        """Names of the tasks whose outputs ``task`` reads (or that it must follow)."""
        found = {self.producer[d] for d in task.inputs.values() if d in self.producer}
        found.update(name for name in self.after.get(task.name, ()) if name in self._by_name)
        return sorted(found)

    def downstream(self, name: str) -> list[str]:
        """Names of every task that depends, directly or not, on task ``name``."""
        found: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for task in self.tasks:
                if task.name not in found and current in self.upstream(task):
                    found.add(task.name)
                    frontier.append(task.name)
        return [t.name for t in self.ordered() if t.name in found]

    def ordered(self) -> list[Task]:
        """Every task in a topological order (level by level, by name within a level)."""
        return [task for level in self.levels for task in level]

    def task(self, name: str) -> Task:
        """The task called ``name``; :class:`PipelineError` listing the known ones otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise PipelineError(f"no task {name!r} in the DAG; known: {', '.join(self._by_name)}") from None

    def subset(self, names: Iterable[str], *, with_downstream: bool = True) -> Dag:
        """A DAG of the named tasks (and, by default, every task downstream of them).

        Inputs produced by tasks left out become sources of the subset (read from the lake as
        they are).
        """
        wanted = {self.task(name).name for name in names}
        if with_downstream:
            for name in list(wanted):
                wanted.update(self.downstream(name))
        kept = [t for t in self.tasks if t.name in wanted]
        produced = {d for t in kept for k, d in t.outputs.items() if k != QUARANTINE_OUTPUT}
        sources = {d for t in kept for d in t.inputs.values() if d not in produced}
        return Dag(kept, sources=sorted(sources | set(self.sources)), after=self.after)

    def _levels(self) -> list[list[Task]]:
        """Kahn's algorithm; a cycle raises naming the tasks on it."""
        deps = {t.name: set(self.upstream(t)) for t in self.tasks}
        levels: list[list[Task]] = []
        done: set[str] = set()
        while len(done) < len(self.tasks):
            ready = sorted(name for name, up in deps.items() if name not in done and up <= done)
            if not ready:
                stuck = sorted(name for name in deps if name not in done)
                raise PipelineError(
                    f"the tasks {', '.join(stuck)} form a cycle through their datasets; break it"
                )
            levels.append([self._by_name[name] for name in ready])
            done.update(ready)
        return levels

    def __repr__(self) -> str:
        return f"Dag({' → '.join('[' + ', '.join(t.name for t in level) + ']' for level in self.levels)})"


def _check_picklable(task: Task) -> None:
    try:
        pickle.dumps(task.fn)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise PipelineError(
            f"task {task.name!r}: its function cannot be sent to worker processes ({exc}); define it at "
            "the top level of an importable module (not a lambda, closure or nested function)"
        ) from exc
    try:
        pickle.dumps(dict(task.params))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise PipelineError(
            f"task {task.name!r}: its params cannot be pickled ({exc}); use plain values"
        ) from exc
