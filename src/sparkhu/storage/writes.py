"""What the lake tells its listener after each write, and which run is writing.

A :class:`~sparkhu.storage.lake.Lake` built with ``on_write=`` hands the listener one list of
:class:`PartitionWrite` per write (one per partition touched), after the files are in place; the
runtime's listener records them in the catalog with one call
(:meth:`~sparkhu.storage.catalog.Catalog.record_writes`). The run the rows belong to is not an
argument of every lake method: a writer names it around its writes with :func:`writing_run`
(a context variable, so each thread and task has its own).

>>> with writing_run("train-1"):
...     current_run()
'train-1'
>>> current_run() is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

_WRITING_RUN: ContextVar[str | None] = ContextVar("sparkhu_writing_run", default=None)
TIME_COLUMNS = ("ts", "quarantined_at")
"""The column whose range a partition write reports (points and tables; quarantine records)."""


@dataclass(frozen=True)
class PartitionWrite:
    """One partition a lake write touched: what it added (or, ``replaced``, what it now holds)."""

    zone: str
    dataset: str
    key: str
    files: int
    rows: int
    bytes: int
    first_ts: int | None  # µs, UTC
    last_ts: int | None
    replaced: bool = False
    run_id: str | None = None


WriteListener = Callable[[Sequence[PartitionWrite]], None]
"""Called once per lake write with the partitions it touched."""


def current_run() -> str | None:
    """The run named by the innermost :func:`writing_run` of this thread or task, if any."""
    return _WRITING_RUN.get()


@contextmanager
def writing_run(run_id: str | None) -> Iterator[None]:
    """Attribute the lake writes (and model registrations) inside the block to ``run_id``."""
    token = _WRITING_RUN.set(run_id)
    try:
        yield
    finally:
        _WRITING_RUN.reset(token)


def partition_writes(
    fs: pafs.FileSystem,
    where: str,
    jobs: Sequence[tuple[str, pa.Table]],
    paths: Sequence[str],
    *,
    replaced: bool,
) -> list[PartitionWrite]:
    """The :class:`PartitionWrite` of each written file (``jobs``: partition dir and table, ``paths``
    the files written for them), ``where`` being the dataset's directory ``.../<zone>/<dataset>``."""
    zone, dataset = where.rstrip("/").rsplit("/", 2)[-2:]
    run_id = current_run()
    sizes = fs.get_file_info(list(paths))
    out = []
    for (part_dir, table), info in zip(jobs, sizes, strict=True):
        first = last = None
        column = next((c for c in TIME_COLUMNS if c in table.column_names), None)
        if column is not None and table.num_rows:
            bounds = pc.min_max(table.column(column).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()))
            first, last = bounds["min"].as_py(), bounds["max"].as_py()
        key = part_dir[len(where) :].strip("/")
        out.append(
            PartitionWrite(
                zone, dataset, key, 1, table.num_rows, int(info.size or 0), first, last, replaced, run_id
            )
        )
    return out
