"""The lake sink: drains a topic into a lake dataset, at least once, without duplicates on read.

A :class:`LakeSink` is one member of a consumer group (several sinks of one group share the
topic's partitions). Each round it gathers messages into one chunk (up to ``max_points``
points or ``max_wait`` seconds), decodes them (Arrow batches; JSON records when given a
:class:`~sparkhu.stream.codecs.JsonDecoder`), writes the points to ``lake.write(zone,
dataset, ...)`` and the undecodable messages to the dataset's quarantine, updates the
catalog's series statistics, and only then commits the offsets. A crash between the write
and the commit delivers the chunk again; the lake's reads de-duplicate on (series_id, ts),
so every point is there exactly once. (The catalog's point counts may then count the
re-delivered chunk twice; its first/last timestamps stay right.)

>>> import tempfile
>>> from sparkhu.series import points
>>> from sparkhu.storage.lake import Lake
>>> from sparkhu.stream.codecs import publish_points
>>> from sparkhu.stream.sqlite import SqliteBus
>>> with tempfile.TemporaryDirectory() as tmp, SqliteBus(f"sqlite:///{tmp}/bus.db") as bus:
...     lake = Lake(f"{tmp}/lake")
...     publish_points(bus, "raw.meters", points("ampds2/electricity/WHE.P", [0, 60_000_000], [1.0, 2.0]))
...     with LakeSink(bus, lake, "raw.meters", dataset="meters") as sink:
...         sink.run_once(timeout=0)
...     lake.read("raw", "meters").num_rows
1
2
2
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from sparkhu.connectors.base import Backends, SinkSpec
from sparkhu.errors import CodecError, ConnectorError
from sparkhu.series import empty_points, is_series_id
from sparkhu.stream.base import Bus, Message
from sparkhu.stream.codecs import JsonDecoder, decode_points, is_arrow, quarantine_table, raw_text


def _decode_arrow(value: bytes) -> tuple[pa.Table | None, str | None, str | None]:
    """``(points, field, problem)`` of an Arrow message: its well-formed points, and why others are not."""
    if not is_arrow(value):
        return None, None, "not an Arrow IPC stream; give the sink a json_decoder for JSON topics"
    try:
        table = decode_points(value)
    except CodecError as exc:
        return None, None, str(exc)
    ids = table.column("series_id").combine_chunks()
    names = ids.dictionary.to_pylist()
    good_name = np.fromiter((is_series_id(n) for n in names), dtype=bool, count=len(names))
    if good_name.all() and not ids.null_count and not table.column("ts").null_count:
        return table, None, None
    keep = good_name[ids.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    keep &= ~ids.is_null().to_numpy(zero_copy_only=False)
    keep &= ~table.column("ts").is_null().to_numpy(zero_copy_only=False)
    wrong = sorted(repr(n) for n, ok in zip(names, good_name, strict=True) if not ok)
    problem = f"{int((~keep).sum())} point(s) without a time or with a series id not source/measurement/field"
    problem += f" ({', '.join(wrong[:5])}{', ...' if len(wrong) > 5 else ''})" if wrong else ""
    return table.filter(pa.array(keep)), "series_id", problem


if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake


@dataclass
class SinkChunk:
    """Messages read in one round, with their decoded points and quarantined records."""

    messages: list[Message]
    points: pa.Table
    quarantine: pa.Table


class LakeSink:
    """Consume ``topic`` as a member of ``group`` and write its points to ``zone/dataset`` of ``lake``.

    ``json_decoder`` decodes messages that are not Arrow (without it they are quarantined);
    ``catalog`` (optional) gets :meth:`~sparkhu.storage.catalog.Catalog.update_series_stats`
    for every written chunk. The topic is created if missing.
    """

    def __init__(
        self,
        bus: Bus,
        lake: Lake,
        topic: str,
        *,
        dataset: str,
        group: str = "lake-sink",
        zone: str = "raw",
        catalog: Catalog | None = None,
        json_decoder: JsonDecoder | None = None,
        max_points: int = 500_000,
        max_wait: float = 1.0,
    ) -> None:
        if not isinstance(max_points, int) or max_points < 1:
            raise ConnectorError(
                f"lake sink of {topic!r}: max_points must be an integer >= 1, got {max_points!r}"
            )
        if max_wait < 0:
            raise ConnectorError(f"lake sink of {topic!r}: max_wait must be >= 0 seconds, got {max_wait!r}")
        if not isinstance(dataset, str) or not dataset:
            raise ConnectorError(f"lake sink of {topic!r}: dataset must be a non-empty name, got {dataset!r}")
        self.name = f"lake-sink:{topic}"
        self.topic = topic
        self.group = group
        self.zone = zone
        self.dataset = dataset
        self.max_points = max_points
        self.max_wait = max_wait
        self.points_written = 0
        self.records_quarantined = 0
        self._lake = lake
        self._catalog = catalog
        self._json = json_decoder
        self._per_message: float | None = None  # points per message seen so far: sizes each poll
        bus.create_topic(topic)
        self._consumer = bus.consumer(group, [topic])

    def fetch(self, timeout: float = 1.0) -> SinkChunk:
        """Poll (waiting up to ``timeout`` s for the first message) and decode one chunk; commits nothing."""
        messages: list[Message] = []
        tables: list[pa.Table] = []
        bad: list[pa.Table] = []
        count = 0
        started = time.monotonic()
        while count < self.max_points:
            per_message = self._per_message or float(self.max_points)  # unknown yet: one message
            wanted = int(min(10_000, max(1, (self.max_points - count) / per_message)))
            polled = self._consumer.poll(max_messages=wanted, timeout=0 if messages else timeout)
            if not polled:
                break
            decoded, quarantined = self._decode(polled)
            messages.extend(polled)
            tables.extend(decoded)
            bad.append(quarantined)
            got = sum(t.num_rows for t in decoded)
            count += got
            seen = max(1.0, got / len(polled))
            self._per_message = seen if self._per_message is None else (self._per_message + seen) / 2
            if time.monotonic() - started >= self.max_wait:
                break
        points = pa.concat_tables(tables) if tables else empty_points()
        return SinkChunk(messages, points, pa.concat_tables(bad) if bad else quarantine_table([]))

    def _decode(self, messages: list[Message]) -> tuple[list[pa.Table], pa.Table]:
        tables: list[pa.Table] = []
        rejected: list[tuple[str, str, str | None, str, str]] = []
        json_values: list[bytes] = []
        json_sources: list[str] = []
        for message in messages:
            source = f"{message.topic}/{message.partition}/{message.offset}"
            if self._json is not None and not is_arrow(message.value):
                json_values.append(message.value)
                json_sources.append(source)
                continue
            table, field, problem = _decode_arrow(message.value)
            if table is not None:
                tables.append(table)
            if problem is not None:
                rejected.append((source, f"offset {message.offset}", field, problem, raw_text(message.value)))
        quarantine = quarantine_table(rejected)
        if json_values and self._json is not None:
            decoded, bad = self._json.decode(json_values, json_sources)
            tables.append(decoded)
            quarantine = pa.concat_tables([quarantine, bad])
        return tables, quarantine

    def store(self, chunk: SinkChunk) -> None:
        """Write the chunk's points and quarantined records durably, and update the catalog."""
        if chunk.points.num_rows:
            self._lake.write(self.zone, self.dataset, chunk.points)
        if chunk.quarantine.num_rows:
            self._lake.write_quarantine(self.dataset, chunk.quarantine)
        if self._catalog is not None and chunk.points.num_rows:
            self._catalog.update_series_stats(chunk.points)

    def commit(self, chunk: SinkChunk) -> None:
        """Commit the offsets after the chunk's messages (call only once :meth:`store` returned)."""
        if chunk.messages:
            self._consumer.commit(chunk.messages)
        self.points_written += chunk.points.num_rows
        self.records_quarantined += chunk.quarantine.num_rows

    def run_once(self, timeout: float = 1.0) -> int:
        """Fetch, store and commit one chunk; returns the number of points written.

        When storing fails, the consumer forgets its uncommitted progress before the error
        propagates, so the next round reads the same messages again.
        """
        chunk = self.fetch(timeout)
        if not chunk.messages:
            return 0
        try:
            self.store(chunk)
        except BaseException:
            self._consumer.seek_to_beginning()  # read the chunk again next round
            raise
        self.commit(chunk)
        return chunk.points.num_rows

    def run(self, stop_event: threading.Event, *, poll_timeout: float = 0.2) -> int:
        """Drain the topic until ``stop_event`` is set; returns the points written."""
        total = 0
        while not stop_event.is_set():
            total += self.run_once(timeout=poll_timeout)
        return total

    def figures(self) -> dict[str, float]:
        """Live counts: points written, records quarantined."""
        return {"points": self.points_written, "quarantined": self.records_quarantined}

    def close(self) -> None:
        """Leave the consumer group (uncommitted messages go to the other members or the next sink)."""
        self._consumer.close()

    def __enter__(self) -> LakeSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LakeSinkSettings(SinkSpec):
    """The ``lake`` sink: a topic's points into the lake's ``raw`` zone, with series stats in the catalog.

    Every topic of the platform has one (named ``lake``); a ``[[sinks]]`` entry of this kind adds
    another, e.g. into another zone.
    """

    kind: Literal["lake"] = "lake"
    zone: str = "raw"
    group: str = "lake-sink"
    """The consumer group; two lake sinks of one topic need two groups."""

    def open(self, backends: Backends, topic: str, dataset: str) -> LakeSink:
        """The lake sink of ``topic``, writing ``zone/dataset``."""
        return LakeSink(
            backends.bus,
            backends.lake,
            topic,
            group=self.group,
            zone=self.zone,
            dataset=dataset,
            catalog=backends.catalog,
        )
