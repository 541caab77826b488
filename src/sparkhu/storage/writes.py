"""What the lake tells its listener after each write, and which run is writing.

A :class:`~sparkhu.storage.lake.Lake` built with ``on_write=`` hands the listener one list of
:class:`PartitionWrite` per write (one per partition touched), after the files are in place; the
runtime's listener records them in the catalog with one call
(:meth:`~sparkhu.storage.catalog.Catalog.record_writes`). The run the rows belong to is not an
argument of every lake method: a writer names it around its writes with :func:`writing_run`
(a context variable, so each thread and task has its own).

A writer of many small writes (a landing of many partitions, a lake sink's chunk) records them
together: inside :meth:`WriteBuffer.collecting` (or :func:`deferred_records`) the lake hands its
writes to the buffer instead of its listener, and :meth:`WriteBuffer.flush` tells each listener
once, with one :class:`PartitionWrite` per partition (several writes of one partition folded by
:func:`fold_writes`): one catalog transaction per batch, not per file.

>>> with writing_run("train-1"):
...     current_run()
'train-1'
>>> current_run() is None
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

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


_BUFFER: ContextVar[WriteBuffer | None] = ContextVar("sparkhu_write_buffer", default=None)


class WriteBuffer:
    """Partition writes held back from their listeners until :meth:`flush` (see the module docstring).

    Thread-safe: a writer's threads that run in a copy of its context (``contextvars.copy_context``)
    add to the same buffer.

    >>> told = []
    >>> def record(writes): told.append(writes)
    >>> buffer = WriteBuffer()
    >>> with buffer.collecting():
    ...     tell(record, [PartitionWrite("raw", "d", "date=1", 1, 5, 10, 0, 9)])
    ...     tell(record, [PartitionWrite("raw", "d", "date=1", 1, 2, 4, 10, 12)])
    >>> told
    []
    >>> buffer.flush()
    1
    >>> [(w.files, w.rows, w.first_ts, w.last_ts) for w in told[0]]
    [(2, 7, 0, 12)]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[WriteListener, list[PartitionWrite]] = {}  # bound methods compare by owner

    def add(self, listener: WriteListener, writes: Sequence[PartitionWrite]) -> None:
        """Hold ``writes`` for ``listener``."""
        with self._lock:
            self._held.setdefault(listener, []).extend(writes)

    @contextmanager
    def collecting(self) -> Iterator[WriteBuffer]:
        """Inside, lake writes (of this thread or task, and of threads run in a copy of its context)
        go to this buffer."""
        token = _BUFFER.set(self)
        try:
            yield self
        finally:
            _BUFFER.reset(token)

    def flush(self) -> int:
        """Tell each listener the writes held for it, folded per partition, in one call; how many
        calls were made."""
        with self._lock:
            held, self._held = list(self._held.items()), {}
        for listener, writes in held:
            listener(fold_writes(writes))
        return len(held)


def tell(listener: WriteListener, writes: Sequence[PartitionWrite]) -> None:
    """Hand one lake write's ``writes`` to ``listener``, or to the collecting :class:`WriteBuffer`."""
    buffer = _BUFFER.get()
    if buffer is None:
        listener(writes)
    else:
        buffer.add(listener, writes)


@contextmanager
def deferred_records() -> Iterator[WriteBuffer]:
    """The lake writes inside the block are told to their listeners once, at its end (also when it
    raises: files written are in the lake). Nested, the outermost block tells."""
    if _BUFFER.get() is not None:
        yield _BUFFER.get()  # type: ignore[misc]
        return
    buffer = WriteBuffer()
    try:
        with buffer.collecting():
            yield buffer
    finally:
        buffer.flush()


def fold_writes(writes: Sequence[PartitionWrite]) -> list[PartitionWrite]:
    """One write per partition, in order of first appearance: appends add up (files, rows, bytes,
    widened range), a replace restarts from itself; the last writer's run is kept.

    >>> a = PartitionWrite("raw", "d", "k", 1, 5, 10, 0, 9)
    >>> r = PartitionWrite("raw", "d", "k", 1, 3, 6, 20, 29, replaced=True)
    >>> [(w.rows, w.replaced) for w in fold_writes([a, r, a])]
    [(8, True)]
    """
    out: dict[tuple[str, str, str], PartitionWrite] = {}
    for w in writes:
        key = (w.zone, w.dataset, w.key)
        have = out.get(key)
        if have is None or w.replaced:
            out[key] = w
            continue
        firsts = [t for t in (have.first_ts, w.first_ts) if t is not None]
        lasts = [t for t in (have.last_ts, w.last_ts) if t is not None]
        out[key] = replace(
            have,
            files=have.files + w.files,
            rows=have.rows + w.rows,
            bytes=have.bytes + w.bytes,
            first_ts=min(firsts) if firsts else None,
            last_ts=max(lasts) if lasts else None,
            run_id=w.run_id,
        )
    return list(out.values())


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


def time_range(table: pa.Table) -> tuple[int | None, int | None]:
    """The first and last time (µs, UTC) of a table's ``ts`` (or ``quarantined_at``); Nones if none.

    >>> from sparkhu.series import points
    >>> time_range(points("a/b/c", [5, 60_000_000], [1.0, 2.0]))
    (5, 60000000)
    """
    column = next((c for c in TIME_COLUMNS if c in table.column_names), None)
    if column is None or not table.num_rows:
        return None, None
    bounds = pc.min_max(table.column(column).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()))
    return bounds["min"].as_py(), bounds["max"].as_py()


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
        first, last = time_range(table)
        key = part_dir[len(where) :].strip("/")
        out.append(
            PartitionWrite(
                zone, dataset, key, 1, table.num_rows, int(info.size or 0), first, last, replaced, run_id
            )
        )
    return out
