"""The lake sink: drains a topic into a lake dataset, at least once, without duplicates on read.

A :class:`LakeSink` is one member of a consumer group (several sinks of one group share the
topic's partitions). It plugs the lake into the shared consumer loop
(:mod:`sparkhu.connectors.consume`): each round gathers messages into one chunk (up to
``max_points`` points or ``max_wait`` seconds), decodes them (Arrow batches; JSON records
when given a :class:`~sparkhu.stream.codecs.JsonDecoder`), writes the undecodable records to
the dataset's quarantine, the points to ``lake.write(zone, dataset, ...)``, updates the
catalog's series statistics, and only then commits the offsets. A crash between the write
and the commit delivers the chunk again; the lake's reads de-duplicate on (series_id, ts),
so every point is there exactly once, and the catalog counts only the points new to the lake
(:mod:`sparkhu.connectors.landing`), so its point counts stay exact.

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from sparkhu.connectors.base import Backends, SinkSpec
from sparkhu.connectors.consume import Batch, ConsumerLoop
from sparkhu.connectors.landing import land
from sparkhu.errors import ConnectorError
from sparkhu.storage.writes import deferred_records
from sparkhu.stream.base import Bus, Message
from sparkhu.stream.codecs import JsonDecoder

if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake


class LakeSink:
    """Consume ``topic`` as a member of ``group`` and write its points to ``zone/dataset`` of ``lake``.

    ``json_decoder`` decodes messages that are not Arrow (without it they are quarantined);
    ``dead_letter`` (optional) gets the messages that held quarantined records, as they came
    (the hook of a dead-letter topic); ``catalog`` (optional) gets
    :meth:`~sparkhu.storage.catalog.Catalog.update_series_stats` for every written
    chunk. The topic is created if missing and the group joined at once.
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
        dead_letter: Callable[[list[Message]], None] | None = None,
        max_points: int = 500_000,
        max_wait: float = 1.0,
    ) -> None:
        name = f"lake sink of {topic!r}"
        if not isinstance(dataset, str) or not dataset:
            raise ConnectorError(f"{name}: dataset must be a non-empty name, got {dataset!r}")
        self.name = f"lake-sink:{topic}"
        self.topic = topic
        self.group = group
        self.zone = zone
        self.dataset = dataset
        self._lake = lake
        self._catalog = catalog
        self._loop = ConsumerLoop(
            bus,
            topic,
            group=group,
            name=name,
            store=self._write_points,
            quarantine=self._write_quarantine,
            dead_letter=dead_letter,
            json_decoder=json_decoder,
            max_points=max_points,
            max_wait=max_wait,
        )
        self._loop.start()

    @property
    def max_points(self) -> int | None:
        """Points a chunk gathers at most."""
        return self._loop.max_points

    @property
    def max_wait(self) -> float:
        """Seconds a chunk gathers polls at most."""
        return self._loop.max_wait

    @property
    def points_written(self) -> int:
        """Points written and committed so far."""
        return self._loop.counts().stored

    @property
    def records_quarantined(self) -> int:
        """Records quarantined (in committed chunks) so far."""
        return self._loop.counts().quarantined

    def fetch(self, timeout: float = 1.0) -> Batch:
        """Poll (waiting up to ``timeout`` s for the first message) and decode one chunk; commits nothing."""
        return self._loop.fetch(timeout)

    def store(self, chunk: Batch) -> None:
        """Write the chunk's quarantined records and points durably, and update the catalog."""
        with deferred_records():  # the chunk's partitions: one catalog transaction
            self._write_quarantine(chunk.quarantine)
            self._write_points(chunk.points)

    def commit(self, chunk: Batch) -> None:
        """Commit the offsets after the chunk's messages (call only once :meth:`store` returned)."""
        self._loop.commit(chunk, chunk.points.num_rows)

    def run_once(self, timeout: float = 1.0) -> int:
        """Fetch, store and commit one chunk; returns the number of points written this round.

        A chunk whose write failed is written again (from memory) at the start of the next
        round; a failure before it (the quarantine write) makes the next round read it again.
        """
        before = self.points_written
        with deferred_records():  # the chunk's partitions: one catalog transaction
            self._loop.run_once(timeout)
        return self.points_written - before

    def run(self, stop_event: threading.Event, *, poll_timeout: float = 0.2) -> int:
        """Drain the topic until ``stop_event`` is set (the chunk in hand is stored and committed),
        then leave the group; returns the points written."""
        total = 0
        try:
            while not stop_event.is_set():
                total += self.run_once(timeout=poll_timeout)
        finally:
            self.close()
        return total

    def figures(self) -> dict[str, float]:
        """Live counts: points written, records quarantined."""
        return {"points": self.points_written, "quarantined": self.records_quarantined}

    def close(self) -> None:
        """Leave the consumer group (uncommitted messages go to the other members or the next sink)."""
        self._loop.close()

    def __enter__(self) -> LakeSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_points(self, points: pa.Table) -> None:
        land(self._lake, self._catalog, self.zone, self.dataset, points)

    def _write_quarantine(self, records: pa.Table) -> None:
        if records.num_rows:
            self._lake.write_quarantine(self.dataset, records)


def dead_letter_topic(bus: Bus, topic: str) -> Callable[[list[Message]], None]:
    """A ``dead_letter`` hook that copies rejected messages, as they came, to ``topic`` of ``bus``.

    Each copy keeps its key and carries where it came from in headers (``dlq.topic``,
    ``dlq.partition``, ``dlq.offset``), as Kafka Connect's ``errors.deadletterqueue`` does; the
    reasons are in the quarantine dataset beside it. Durable before the batch goes on.

    >>> import tempfile
    >>> from sparkhu.stream.sqlite import SqliteBus
    >>> with tempfile.TemporaryDirectory() as tmp, SqliteBus(f"sqlite:///{tmp}/bus.db") as bus:
    ...     dead_letter_topic(bus, "dlq")([Message("in", 0, 7, b"k", b"oops", 0)])
    ...     bus.end_offsets("dlq")
    {0: 1}
    """
    bus.create_topic(topic, 1)

    def send(messages: list[Message]) -> None:
        for message in messages:
            headers = {
                "dlq.topic": message.topic.encode(),
                "dlq.partition": str(message.partition).encode(),
                "dlq.offset": str(message.offset).encode(),
            }
            bus.produce(topic, [(message.key, message.value)], headers=headers)

    return send


class LakeSinkSettings(SinkSpec):
    """The ``lake`` sink: a topic's points into the lake's ``raw`` zone, with series stats in the catalog.

    Every topic of the platform has one (named ``lake``); a ``[[sinks]]`` entry of this kind adds
    another, e.g. into another zone.
    """

    kind: Literal["lake"] = "lake"
    zone: str = "raw"
    group: str = "lake-sink"
    """The consumer group; two lake sinks of one topic need two groups."""
    dead_letter_topic: str | None = None
    """A topic that gets a copy of every message with a quarantined record (``{topic}`` stands for
    the consumed topic, e.g. ``{topic}.dlq``); none: the quarantine dataset only."""

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
            dead_letter=(
                None
                if self.dead_letter_topic is None
                else dead_letter_topic(backends.bus, self.dead_letter_topic.replace("{topic}", topic))
            ),
        )
