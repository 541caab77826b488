"""Run a source: publish its batches to the bus (:func:`pump`) or write them to the lake
directly (:func:`ingest_to_lake`), saving the source's position only after each batch is durable.

Both resume from the watermark the catalog holds for ``(source.name, key)``: ``key`` is the
topic for :func:`pump` and ``lake:<zone>/<dataset>`` for :func:`ingest_to_lake`, so one source
can feed both without the two interfering. A crash after a batch is durable but before its
watermark is saved sends that batch again; the lake de-duplicates on read, so nothing is
lost and nothing is counted twice. Bad records go to ``quarantine/<dataset>`` of the lake
before the batch that follows them is sent — those the source found, and the points of any
source's batch that break :data:`~sparkhu.series.POINT_RULES` (a replay shifted past year 9998,
a third-party connector's infinite value), so one bad point never fails a batch downstream.
A run that sends or quarantines anything, or fails, is recorded in the catalog (kind
``connector``) with its point count or its error.

>>> import tempfile
>>> from datetime import timedelta
>>> from sparkhu.connectors.replay import ReplaySource
>>> from sparkhu.series import points
>>> from sparkhu.storage.catalog import Catalog
>>> from sparkhu.storage.lake import Lake
>>> with tempfile.TemporaryDirectory() as tmp:
...     lake, catalog = Lake(f"{tmp}/lake"), Catalog(f"sqlite:///{tmp}/catalog.db")
...     src = ReplaySource("demo", points("a/b/c", [0, 60_000_000], [1.0, 2.0]), shift=timedelta(0),
...                        speed=float("inf"))
...     first = ingest_to_lake(src, lake, catalog, zone="raw", dataset="d").points
...     again = ingest_to_lake(src, lake, catalog, zone="raw", dataset="d").points  # resumes: nothing new
...     catalog.close()
...     first, again, lake.read("raw", "d").num_rows
(2, 0, 2)
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from sparkhu.connectors.base import Position, Source
from sparkhu.connectors.landing import Landing
from sparkhu.series import check_points, quarantine_records

if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake
    from sparkhu.stream.base import Bus

__all__ = ["PumpStats", "ingest_to_lake", "pump"]

Stop = threading.Event | Callable[[], bool]


@dataclass
class PumpStats:
    """What one run of a source did."""

    points: int = 0
    batches: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    quarantine: list[pa.Table] = field(default_factory=list)
    """Quarantined records kept in memory when no lake was given to store them."""

    @property
    def points_per_s(self) -> float:
        """Throughput of the run."""
        return self.points / self.seconds if self.seconds > 0 else 0.0


def pump(
    source: Source,
    bus: Bus,
    topic: str,
    catalog: Catalog,
    lake: Lake | None = None,
    quarantine_dataset: str = "connectors",
    stop: Stop | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    max_rows: int = 50_000,
) -> PumpStats:
    """Publish ``source``'s batches to ``topic`` (Arrow messages), each followed by its watermark.

    Runs until the source ends or ``stop`` (an Event or a callable) is set; ``progress`` is
    called with the points sent so far after each batch.
    """
    from sparkhu.stream.codecs import publish_points

    def deliver(batch: pa.Table) -> None:
        publish_points(bus, topic, batch, max_rows=max_rows)

    return _run(source, topic, deliver, catalog, lake, quarantine_dataset, stop, progress)


def ingest_to_lake(
    source: Source,
    lake: Lake,
    catalog: Catalog,
    zone: str = "raw",
    dataset: str = "ingest",
    *,
    stop: Stop | None = None,
    progress: Callable[[int], None] | None = None,
    update_stats: bool = True,
    checkpoint_points: int = 16_000_000,
    checkpoint_s: float = 10.0,
) -> PumpStats:
    """Write ``source``'s batches straight to ``zone/dataset`` of the lake, then its watermark.

    The direct path of ``sparkhu ingest`` and of the file → lake benchmark. The source is read
    one batch ahead in a thread while the previous batch is written, and the points go through a
    :class:`~sparkhu.connectors.landing.Landing`: one file per partition for time-ordered input,
    written by a thread of its own. Every ``checkpoint_points`` points or ``checkpoint_s`` seconds,
    when the source has had nothing new for a second (a polling source waiting), and at the end or
    a stop, the landing commits (files written, series statistics counted once, each point once however
    often it is ingested) and the watermark is saved; a crash re-reads from the last one.
    ``progress`` is called with the points taken so far after each batch.
    """
    landing = Landing(lake, catalog if update_stats else None, zone, dataset)

    def deliver(batch: pa.Table) -> None:
        landing.add(batch)

    try:
        return _run(
            source, f"lake:{zone}/{dataset}", deliver, catalog, lake, dataset, stop, progress,
            commit=landing.commit, commit_points=checkpoint_points, commit_s=checkpoint_s,
            read_ahead=True,
        )  # fmt: skip
    finally:
        landing.close()


def _run(
    source: Source,
    key: str,
    deliver: Callable[[pa.Table], None],
    catalog: Catalog,
    lake: Lake | None,
    quarantine_dataset: str,
    stop: Stop | None,
    progress: Callable[[int], None] | None,
    *,
    commit: Callable[[], object] | None = None,
    commit_points: int = 0,
    commit_s: float = float("inf"),
    read_ahead: bool = False,
) -> PumpStats:
    """Deliver every batch; save the watermark after each (or, with ``commit``, after the call to
    ``commit`` that makes the batches delivered since the last one durable)."""
    from sparkhu.storage.catalog import RunRecord

    stats = PumpStats()
    run_id = uuid.uuid4().hex
    began = datetime.now(UTC)
    recorded = False

    def record() -> None:  # a run is recorded once it does something, so idle polls leave no trace
        nonlocal recorded
        if not recorded:
            catalog.start_run(
                RunRecord(run_id, "connector", source.name, "running", began, params={"key": key})
            )
            recorded = True

    def quarantine(records: pa.Table) -> None:
        if records.num_rows == 0:
            return
        record()
        if lake is not None:
            lake.write_quarantine(quarantine_dataset, records)
        else:
            stats.quarantine.append(records)
        stats.quarantined += records.num_rows

    stopped = _stopper(stop)
    started = time.perf_counter()
    batches: Iterator[tuple[pa.Table | None, Position | None, list[pa.Table]]] | None = None
    pending: Position | None = None  # the position of batches delivered but not committed
    pending_points = 0
    committed_at = time.monotonic()
    saved: Mapping[str, object] | None = None

    def save(position: Position) -> None:
        nonlocal saved
        if position != saved:
            catalog.set_watermark(source.name, key, position)
            saved = position

    def checkpoint() -> None:
        nonlocal pending, pending_points, committed_at
        if pending is not None and commit is not None:
            commit()
            save(pending)
        pending, pending_points, committed_at = None, 0, time.monotonic()

    try:
        saved = catalog.get_watermark(source.name, key)
        # held points of a source that waits (a poll) are committed, not kept until its next batch
        batches = _ahead(source, saved, idle=checkpoint) if read_ahead else _inline(source, saved, quarantine)
        for batch, position, bad in batches:
            for records in bad:
                quarantine(records)
            if batch is None or position is None:
                continue
            batch = _checked(batch, source.name, stats.batches + 1, quarantine)
            if batch.num_rows:
                record()
                deliver(batch)
                stats.points += batch.num_rows
                stats.batches += 1
            if commit is None:
                save(position)
            else:
                pending, pending_points = position, pending_points + batch.num_rows
                if pending_points >= commit_points or time.monotonic() - committed_at >= commit_s:
                    checkpoint()
            if batch.num_rows and progress is not None:
                progress(stats.points)
            if stopped():
                break
        checkpoint()
    except BaseException as exc:
        if isinstance(exc, Exception) and pending is not None:
            # the batches delivered before a source's error are kept (a crash re-reads them instead)
            with contextlib.suppress(Exception):
                checkpoint()
        stats.seconds = time.perf_counter() - started
        record()
        catalog.finish_run(
            run_id, "failed", rows_out=stats.points, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    stats.seconds = time.perf_counter() - started
    if recorded:
        catalog.finish_run(run_id, "success", rows_out=stats.points)
    return stats


Item = tuple[pa.Table | None, Position | None, list[pa.Table]]
"""A batch, its position and the records quarantined before it (batch None: only records)."""


def _inline(
    source: Source, saved: Mapping[str, object] | None, quarantine: Callable[[pa.Table], None]
) -> Iterator[Item]:
    """The source's batches read in this thread (bad records quarantined as they come)."""
    reading = source.read(saved, quarantine)
    try:
        for batch, position in reading:
            yield batch, position, []
    finally:
        close = getattr(reading, "close", None)
        if close is not None:
            close()


_DONE = object()


def _ahead(
    source: Source,
    saved: Mapping[str, object] | None,
    depth: int = 1,
    *,
    idle: Callable[[], object] | None = None,
    idle_s: float = 1.0,
) -> Iterator[Item]:
    """The source's batches read by a thread of their own, ``depth`` batches ahead of the caller.

    ``idle`` is called (in the caller's thread, between two batches) each time the source has had
    nothing new for ``idle_s`` seconds.

    Parsing (pyarrow releases the GIL) then overlaps the caller's writes. Bad records travel with
    the next batch, so the caller still stores them before it; a source's error is raised here.
    Closing this generator stops the thread (the batches read ahead are dropped).
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    halt = threading.Event()

    def put(item: object) -> bool:
        while not halt.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        bad: list[pa.Table] = []
        reading = source.read(saved, bad.append)
        try:
            for batch, position in reading:
                taken, bad[:] = list(bad), []
                if not put((batch, position, taken)):
                    return
            put((None, None, list(bad)))
            put(_DONE)
        except BaseException as exc:  # handed to the caller
            put((None, None, list(bad)))
            put(exc)
        finally:
            close = getattr(reading, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=f"sparkhu-read-{source.name}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = items.get(timeout=idle_s) if idle is not None else items.get()
            except queue.Empty:
                assert idle is not None
                idle()
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        halt.set()
        thread.join()


def _checked(batch: pa.Table, name: str, number: int, quarantine: Callable[[pa.Table], None]) -> pa.Table:
    """The points of a source's batch that obey the rules; the others quarantined (``batch N row R``)."""
    check = check_points(batch)
    if check.rows:
        locations = [f"batch {number} row {row + 1}" for row in check.rows]
        quarantine(quarantine_records(name, locations, check.fields, check.reasons, check.raws))
    return check.points


def _stopper(stop: Stop | None) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    return stop
