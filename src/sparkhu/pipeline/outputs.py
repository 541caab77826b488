"""One run's outputs: kept in memory for the later stages that read them, written behind on threads.

A stage hands its outputs to the tasks of later stages without a round trip through the lake:
:meth:`RunOutputs.keep` holds a dataset's tables of consecutive intervals while some task left
to run reads it (``max_rows`` rows at most; past that, or after a gap, its readers go to the
lake), :meth:`RunOutputs.read` serves ``[start, end)`` from them and reads from the lake only
what lies before, and :meth:`RunOutputs.release` lets a dataset go once its last reader is
done. Writes run on two writer threads (:meth:`RunOutputs.write_behind`) while the next stage
computes; a read of days still being written waits for those writes. Within a chain, tasks hand
over inside the worker, so only readers in another stage count.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> from sparkhu.pipeline import examples
>>> from sparkhu.pipeline.base import Task
>>> from sparkhu.pipeline.dag import Dag
>>> from sparkhu.series import points
>>> from sparkhu.storage.lake import Lake
>>> dag = Dag([
...     Task("copy", examples.passthrough, {"points": "raw"}, {"points": "clean"}),
...     Task("all", examples.mean_of_all, {"points": "clean"}, {"means": "means"}, scope="all"),
... ])
>>> day = datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 2, tzinfo=UTC)
>>> with tempfile.TemporaryDirectory() as root:
...     with RunOutputs.of(Datasets(Lake(root), "m"), dag, max_rows=1_000) as outputs:
...         outputs.keep("clean", *day, points("a/b/c", [0, 60_000_000], [1.0, 2.0]))
...         outputs.read("clean", *day)["value"].to_pylist()
[1.0, 2.0]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import pandas as pd
import pyarrow as pa

from sparkhu.pipeline.base import Task
from sparkhu.pipeline.dag import Dag
from sparkhu.pipeline.datasets import Datasets, within

WRITER_THREADS = 2


class RunOutputs:
    """The outputs of one run; ``reads`` maps a task to the datasets it reads from earlier stages."""

    def __init__(self, datasets: Datasets, reads: Mapping[str, Iterable[str]], *, max_rows: int) -> None:
        self.datasets = datasets
        self.max_rows = max_rows
        self._reads = {task: frozenset(names) for task, names in reads.items()}
        self._readers: dict[str, int] = {}
        """Dataset → tasks left to run that read it from another stage."""
        for names in self._reads.values():
            for dataset in names:
                self._readers[dataset] = self._readers.get(dataset, 0) + 1
        self._kept: dict[str, list[tuple[datetime, datetime, pa.Table]]] = {}
        self._writes: dict[str, list[tuple[datetime, datetime, Future[Any]]]] = {}
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="pipeline-write")

    @classmethod
    def of(cls, datasets: Datasets, dag: Dag, *, max_rows: int) -> RunOutputs:
        """The outputs of a run of ``dag``: each task counts as a reader of the datasets it
        reads from a task of another stage (:meth:`Dag.stages`)."""
        stage_of = {t.name: i for i, (_, level) in enumerate(dag.stages()) for t in level}
        reads = {
            task.name: [
                d
                for d in task.inputs.values()
                if d in dag.producer and stage_of[dag.producer[d]] != stage_of[task.name]
            ]
            for task in dag.tasks
        }
        return cls(datasets, reads, max_rows=max_rows)

    def keep(self, dataset: str, start: datetime, end: datetime, table: pa.Table) -> None:
        """Keep what a task just made of ``[start, end)`` for the tasks of this run that read it."""
        with self._lock:
            if self._readers.get(dataset, 0) <= 0:
                return
            pieces = self._kept.setdefault(dataset, [])
            if pieces and pieces[-1][1] != start:
                self._drop(dataset)  # not contiguous: read from the lake
                return
            pieces.append((start, end, table))
            if sum(t.num_rows for _, _, t in pieces) > self.max_rows:
                self._drop(dataset)

    def read(self, dataset: str, start: datetime, end: datetime) -> pa.Table:
        """``[start, end)`` of ``dataset``: from this run's outputs where they cover it, else the lake."""
        with self._lock:
            pieces = list(self._kept.get(dataset, ()))
        if not pieces or end > pieces[-1][1] or end <= pieces[0][0]:
            self._await_writes(dataset, start, end)
            return self.datasets.read(dataset, start, end)
        first = pieces[0][0]
        parts = [t for s, e, t in pieces if e > start and s < end]
        kept = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
        if pieces[0][0] > start or pieces[-1][1] < end or len(parts) != len(pieces):
            kept = within(kept, max(start, first), end)
        if start < first:
            self._await_writes(dataset, start, first)
            older = self.datasets.read(dataset, start, first)
            if older.num_rows:
                older = older.cast(kept.schema) if older.schema != kept.schema else older
                kept = pa.concat_tables([older, kept], promote_options="permissive")
        return kept

    def forget(self, datasets: Iterable[str]) -> None:
        """Drop ``datasets`` from the hand-over (not all written: their readers go to the lake)."""
        with self._lock:
            for dataset in datasets:
                self._drop(dataset)

    def release(self, task: Task) -> None:
        """``task`` is done reading: a dataset no task is left to read is let go."""
        with self._lock:
            for dataset in self._reads.get(task.name, ()):
                if dataset in self._readers:
                    self._readers[dataset] -= 1
                    if self._readers[dataset] <= 0:
                        self._kept.pop(dataset, None)

    def write_behind(
        self, datasets: Iterable[str], start: datetime, end: datetime, job: Callable[[], Any]
    ) -> Future[Any]:
        """Run ``job`` (writing days ``[start, end)`` of ``datasets``) on the writer threads;
        reads of those days wait for it (reads the hand-over covers do not)."""
        future = self._writer.submit(job)
        with self._lock:
            for dataset in datasets:
                self._writes.setdefault(dataset, []).append((start, end, future))
        return future

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        """Run ``job`` on the writer threads, no read waiting for it (e.g. recording metadata)."""
        return self._writer.submit(job)

    def quarantine(self, task: Task, frame: pd.DataFrame) -> None:
        """Write a task's ``rejects`` (with a ``series_id`` column) to the lake's quarantine."""
        if not len(frame):
            return
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
        self.datasets.lake.write_quarantine(self.datasets.dataset, records)

    def close(self) -> None:
        """Wait for every write of the run."""
        self._writer.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _drop(self, dataset: str) -> None:
        self._kept.pop(dataset, None)
        self._readers.pop(dataset, None)

    def _await_writes(self, dataset: str, start: datetime, end: datetime) -> None:
        """Wait for this run's pending writes of days of ``dataset`` in ``[start, end)``."""
        with self._lock:
            pending = [f for s, e, f in self._writes.get(dataset, ()) if s < end and e > start]
        for future in pending:
            future.result()
