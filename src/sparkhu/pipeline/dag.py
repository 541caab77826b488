"""The task graph: tasks bound by the datasets they read and write, checked when built.

A :class:`Dag` is validated on construction: task names and output datasets are unique,
every input is produced by a task or is a declared source dataset (``raw`` by default),
the graph has no cycle and every task function can be pickled (it may run in another
process). Metadata datasets (``Task.meta_output``, ``Task.meta_inputs``: series metadata a
task records for later tasks) are checked the same way, and a name is either frames or
metadata, never both. Any violation raises :class:`~sparkhu.errors.PipelineError` naming the
task or dataset at fault. :attr:`Dag.levels` groups the tasks into topological levels: the
tasks of one level do not depend on each other and may run in parallel.

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
>>> period = Task("period", examples.passthrough, {"points": "raw"}, {}, meta_output="sampling")
>>> reader = Task("gaps", examples.passthrough, {"points": "raw"}, {"points": "g"}, meta_inputs=("sampling",))
>>> Dag([reader, period]).upstream(reader)
['period']
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

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
        """Extra ordering with no dataset between: task → tasks it must follow. Names not in the
        DAG are ignored. Series metadata a task reads is better declared (``Task.meta_inputs``):
        then the DAG checks that some task or source provides it."""
        self._by_name: dict[str, Task] = {}
        for task in self.tasks:
            if not isinstance(task, Task):
                raise PipelineError(f"expected Task objects, got {type(task).__name__}: {task!r}")
            if task.name in self._by_name:
                raise PipelineError(f"task name {task.name!r} is used twice; task names must be unique")
            self._by_name[task.name] = task
        self.producer: dict[str, str] = {}
        """Dataset (frames or metadata) → the task that writes it."""
        as_meta = {d: t.name for t in self.tasks for d in (*t.meta_inputs, t.meta_output) if d is not None}
        as_frames = {d: t.name for t in self.tasks for d in (*written_frames(t), *t.inputs.values())}
        clash = sorted(set(as_meta) & set(as_frames))
        if clash:
            dataset = clash[0]
            raise PipelineError(
                f"dataset {dataset!r} is frames for task {as_frames[dataset]!r} but metadata for task "
                f"{as_meta[dataset]!r}; give the two different names"
            )
        self.metadata = frozenset(as_meta)
        """Names of the metadata datasets (series metadata in the catalog, not frames in the lake)."""
        for task in self.tasks:
            for dataset in written(task):
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
            for dataset in [*task.inputs.values(), *task.meta_inputs]:
                if dataset not in self.producer and dataset not in self.sources:
                    raise PipelineError(
                        f"task {task.name!r} reads dataset {dataset!r}, which no task produces and which is "
                        f"not a source ({', '.join(self.sources)}); add its producer or declare it a source"
                    )
        self.levels: list[list[Task]] = self._levels()
        for task in self.tasks:
            _check_picklable(task)

    def upstream(self, task: Task) -> list[str]:
        """Names of the tasks whose outputs or metadata ``task`` reads (or that it must follow)."""
        found = {self.producer[d] for d in (*task.inputs.values(), *task.meta_inputs) if d in self.producer}
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

    def stages(self) -> list[tuple[Literal["chain", "all"], list[Task]]]:
        """The order a run takes: a ``chain`` of every per-series task whose upstream is done
        (run together per chunk of series), then the ``all`` (``scope="all"``) tasks waiting
        for it, which see every series at once, and so on.

        >>> from sparkhu.pipeline import examples
        >>> dag = Dag([
        ...     Task("a", examples.passthrough, {"points": "raw"}, {"points": "x"}),
        ...     Task("all", examples.mean_of_all, {"points": "x"}, {"means": "m"}, scope="all"),
        ...     Task("b", examples.passthrough, {"points": "x"}, {"points": "y"}),
        ... ])
        >>> [(kind, [t.name for t in tasks]) for kind, tasks in dag.stages()]
        [('chain', ['a', 'b']), ('all', ['all'])]
        """
        stages: list[tuple[Literal["chain", "all"], list[Task]]] = []
        done: set[str] = set()
        remaining = self.ordered()
        while remaining:
            chain: list[Task] = []
            for task in remaining:
                ready = done | {t.name for t in chain}
                if task.scope == "series" and set(self.upstream(task)) <= ready:
                    chain.append(task)
            if chain:
                stages.append(("chain", chain))
            else:
                chain = [t for t in remaining if set(self.upstream(t)) <= done]
                stages.append(("all", chain))
            done.update(t.name for t in chain)
            remaining = [t for t in remaining if t.name not in done]
        return stages

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
        produced = {d for t in kept for d in written(t)}
        sources = {d for t in kept for d in (*t.inputs.values(), *t.meta_inputs) if d not in produced}
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


def written_frames(task: Task) -> list[str]:
    """The datasets of frames ``task`` writes (its ``rejects`` go to the quarantine instead)."""
    return [d for k, d in task.outputs.items() if k != QUARANTINE_OUTPUT]


def written(task: Task) -> list[str]:
    """Every dataset ``task`` writes: its frames and its metadata dataset."""
    return [*written_frames(task), *([task.meta_output] if task.meta_output else [])]


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
