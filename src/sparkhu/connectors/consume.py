"""The consumer loop every reader of a points topic shares: poll, decode, quarantine, store, commit.

A :class:`ConsumerLoop` is one member of a consumer group reading one topic. The lake sink
and the online predictor plug in what they do with a batch; the loop does the rest, the same
way for both. Each :meth:`~ConsumerLoop.run_once`:

1. **polls** a batch: polls gathered until ``max_points`` points or ``max_wait`` seconds (the
   first poll waits up to ``timeout`` for a message);
2. **decodes** it (:func:`decode`): Arrow IPC points, JSON records with a
   :class:`~sparkhu.stream.codecs.JsonDecoder`; a message or point that cannot be used
   (:data:`~sparkhu.series.POINT_RULES`) becomes a quarantine row naming it and saying why — a
   message no decoder can read, whatever it raises, never stops the loop: it is committed
   with the batch, so a poison message is read once, not on every restart;
3. **quarantines** those rows (``quarantine``: a durable write; without it they are only logged)
   and hands the messages they came from to ``dead_letter`` when one is given (the hook of a
   dead-letter topic: the raw messages, as they came);
4. **prepares** the table to store, in memory (``prepare``: the lake sink stores the points
   as they are, the online predictor absorbs them and returns forecasts);
5. **stores** that table durably (``store``; idempotent, since a crash before the commit
   delivers the batch again);
6. **commits** exactly the offsets of the batch's messages.

The loop counts what it committed (:meth:`~ConsumerLoop.counts`) and measures each readable
message's latency, from its bus timestamp (when it was produced) to the moment what it
produced was stored (:meth:`~ConsumerLoop.latencies_ms`).

A failure before ``prepare`` returned (polling, decoding, the quarantine write, ``prepare``
itself) seeks back to the committed offsets, so the next round reads the batch again. Once
prepared, a batch is never read again: ``prepare`` may have changed memory (the online
predictor's windows would then find its points already seen and forecast nothing), so a
failed ``store`` or commit is kept and retried at the start of the next round, before polling.

>>> import tempfile
>>> from sparkhu.series import points
>>> from sparkhu.stream.codecs import publish_points
>>> from sparkhu.stream.sqlite import SqliteBus
>>> stored = []
>>> with tempfile.TemporaryDirectory() as tmp, SqliteBus(f"sqlite:///{tmp}/bus.db") as bus:
...     bus.create_topic("points", 1)
...     _ = publish_points(bus, "points", points("home/power/P", [0, 60_000_000], [1.0, 2.0]))
...     bus.produce("points", [(None, b"oops")])
...     loop = ConsumerLoop(bus, "points", group="doc", name="doc reader", store=stored.append)
...     batch = loop.run_once(timeout=1.0)
...     loop.close()
>>> stored[0].column("value").to_pylist(), batch.quarantine.column("location").to_pylist()
([1.0, 2.0], ['offset 1'])
>>> loop.counts()
Counts(batches=1, messages=2, points=2, quarantined=1, stored=2)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from sparkhu.errors import CodecError, ConnectorError
from sparkhu.series import check_points, empty_points
from sparkhu.stream.base import Bus, Consumer, Message
from sparkhu.stream.codecs import JsonDecoder, decode_points, is_arrow, quarantine_table, raw_text

log = logging.getLogger(__name__)

_MAX_POLL = 10_000
"""Messages asked for in one poll at most (a bound on a single bus round trip)."""


@dataclass(frozen=True)
class Batch:
    """Messages read in one round, with their decoded points and quarantined records."""

    messages: list[Message]
    """Every message read: their offsets are committed together."""
    points: pa.Table
    """The usable points (:data:`~sparkhu.series.POINT_SCHEMA`)."""
    quarantine: pa.Table
    """One row per message or point that could not be used, with the reason."""
    readable: list[Message]
    """The messages that held points (the ones whose latency means something)."""
    rejected: list[Message] = field(default_factory=list)
    """The messages with at least one quarantined record, in order (what a dead-letter topic gets)."""
    sizes: list[int] | None = None
    """Rows of ``points`` per message of ``readable``, in order; ``None`` when JSON messages,
    decoded together, make it unknown. Lets a consumer handle one message at a time."""


@dataclass(frozen=True)
class Counts:
    """What a :class:`ConsumerLoop` has committed since it was created."""

    batches: int
    messages: int
    points: int
    quarantined: int
    stored: int
    """Rows of the prepared tables stored (points for the lake sink, forecasts for the predictor)."""


def message_source(message: Message) -> str:
    """How a quarantine row names a message: ``topic/partition/offset``."""
    return f"{message.topic}/{message.partition}/{message.offset}"


def decode(messages: Sequence[Message], json_decoder: JsonDecoder | None = None) -> Batch:
    """The points of ``messages`` and a quarantine row for each message or point that is not usable.

    Arrow messages keep their points that obey :data:`~sparkhu.series.POINT_RULES`, one
    quarantine row per other point (``offset 7 row 3``); JSON messages go to ``json_decoder``, or
    are quarantined without one. A message that is not a points table at all is quarantined
    whole, with a reason starting ``not a table of points``. Nothing a message holds makes this
    raise: an unexpected decoder failure quarantines the message with the exception's text.

    >>> from sparkhu.series import points
    >>> from sparkhu.stream.codecs import encode_arrow
    >>> good = encode_arrow(points(["a/b/c", "not an id"], [0, 0], [1.0, 2.0]))
    >>> batch = decode([Message("t", 0, 7, None, good, 0), Message("t", 0, 8, None, b"{}", 0)])
    >>> batch.points.column("series_id").to_pylist(), batch.quarantine.column("source").to_pylist()
    (['a/b/c'], ['t/0/7', 't/0/8'])
    """
    tables: list[pa.Table] = []
    rejected: list[tuple[str, str, str | None, str, str]] = []
    readable: list[Message] = []
    sizes: list[int] = []
    json_messages: list[Message] = []
    for message in messages:
        if json_decoder is not None and not is_arrow(message.value):
            json_messages.append(message)
            continue
        source = message_source(message)
        try:
            table, bad_rows = _arrow_points(message.value, f"offset {message.offset}")
        except Exception as exc:  # a poison message must not stop the consumer: quarantine it
            log.warning("cannot decode message %s", source, exc_info=True)
            table, bad_rows = None, [(f"offset {message.offset}", None, _unexpected(exc), None)]
        if table is not None:
            tables.append(table)
            readable.append(message)
            sizes.append(table.num_rows)
        for location, fld, why, raw in bad_rows:
            rejected.append((source, location, fld, why, raw_text(message.value) if raw is None else raw))
    quarantine = quarantine_table(rejected)
    if json_messages and json_decoder is not None:
        sources = [message_source(m) for m in json_messages]
        decoded, bad = _decode_json(json_decoder, json_messages, sources)
        tables.append(decoded)
        quarantine = pa.concat_tables([quarantine, bad])
        bad_sources = set(bad.column("source").to_pylist())
        readable.extend(m for m, s in zip(json_messages, sources, strict=True) if s not in bad_sources)
    points = pa.concat_tables(tables) if tables else empty_points()
    rejected_sources = set(quarantine.column("source").to_pylist())
    dead = [m for m in messages if message_source(m) in rejected_sources]
    return Batch(list(messages), points, quarantine, readable, dead, None if json_messages else sizes)


def _unexpected(exc: Exception) -> str:
    return f"cannot decode: {type(exc).__name__}: {exc}"[:1000]


def _decode_json(
    decoder: JsonDecoder, messages: Sequence[Message], sources: list[str]
) -> tuple[pa.Table, pa.Table]:
    """The decoder's points and quarantine; a message that makes it raise is quarantined alone."""
    try:
        return decoder.decode([m.value for m in messages], sources)
    except CodecError:
        raise  # a strict decoder asked for it
    except Exception as exc:
        if len(messages) == 1:
            log.warning("cannot decode message %s", sources[0], exc_info=True)
            where = f"offset {messages[0].offset}"
            row = (sources[0], where, None, _unexpected(exc), raw_text(messages[0].value))
            return empty_points(), quarantine_table([row])
    parts = [_decode_json(decoder, [m], [s]) for m, s in zip(messages, sources, strict=True)]
    return pa.concat_tables([p for p, _ in parts]), pa.concat_tables([q for _, q in parts])


_BadRow = tuple[str, str | None, str, str | None]
"""(location, field, reason, raw text or None for the whole message)."""


def _arrow_points(value: bytes, where: str) -> tuple[pa.Table | None, list[_BadRow]]:
    """The usable points of an Arrow message (None: none), and what is wrong with the rest."""
    if not is_arrow(value):
        hint = "give the sink a json_decoder for JSON topics"
        return None, [(where, None, f"not a table of points: not an Arrow IPC stream; {hint}", None)]
    try:
        table = decode_points(value)
    except CodecError as exc:
        return None, [(where, None, f"not a table of points: {exc}", None)]
    check = check_points(table)
    if not check.rows:
        return check.points, []  # missing values dropped
    bad: list[_BadRow] = [
        (f"{where} row {row + 1}", fld, why, raw)
        for row, fld, why, raw in zip(check.rows, check.fields, check.reasons, check.raws, strict=True)
    ]
    return (check.points if check.points.num_rows else None), bad


def _join(parts: Sequence[Batch]) -> Batch:
    """One batch of the decoded polls of a round (an empty one when nothing was polled)."""
    if not parts:
        return Batch([], empty_points(), quarantine_table([]), [], [], [])
    if len(parts) == 1:
        return parts[0]
    sizes = [part.sizes for part in parts]
    return Batch(
        [m for part in parts for m in part.messages],
        pa.concat_tables([part.points for part in parts]),
        pa.concat_tables([part.quarantine for part in parts]),
        [m for part in parts for m in part.readable],
        [m for part in parts for m in part.rejected],
        None if any(s is None for s in sizes) else [n for s in sizes if s is not None for n in s],
    )


class ConsumerLoop:
    """Drain ``topic`` as a member of ``group``, one batch per round; see the module docstring.

    ``store(table)`` makes a prepared table durable; ``prepare(batch)`` builds it in memory
    (default: the batch's points); ``quarantine(rows)`` writes the quarantined rows durably
    (default: they are only logged); ``dead_letter(messages)`` gets the messages those rows came
    from (:attr:`Batch.rejected`), after the quarantine write and before ``prepare``. ``name`` (e.g.
    ``"lake sink of 'raw.meters'"``) starts every error message and log line. A batch gathers polls
    of up to ``max_messages`` messages until it holds ``max_points`` points (``None``: one poll's
    worth) or ``max_wait`` seconds have passed. The consumer joins the group (creating the topic if
    missing) at :meth:`start` or the first poll; :meth:`close` leaves it. The latencies of the last
    ``latency_samples`` messages are kept.
    """

    def __init__(
        self,
        bus: Bus,
        topic: str,
        *,
        group: str,
        name: str,
        store: Callable[[pa.Table], None],
        prepare: Callable[[Batch], pa.Table] | None = None,
        quarantine: Callable[[pa.Table], None] | None = None,
        dead_letter: Callable[[list[Message]], None] | None = None,
        json_decoder: JsonDecoder | None = None,
        max_points: int | None = None,
        max_messages: int = _MAX_POLL,
        max_wait: float = 0.0,
        latency_samples: int = 100_000,
    ) -> None:
        if max_points is not None and (not isinstance(max_points, int) or max_points < 1):
            raise ConnectorError(f"{name}: max_points must be an integer >= 1, got {max_points!r}")
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise ConnectorError(f"{name}: max_messages must be an integer >= 1, got {max_messages!r}")
        if not max_wait >= 0:
            raise ConnectorError(f"{name}: max_wait must be >= 0 seconds, got {max_wait!r}")
        self.bus, self.topic, self.group, self.name = bus, topic, group, name
        self.json_decoder = json_decoder
        self.max_points, self.max_messages, self.max_wait = max_points, max_messages, max_wait
        self._store = store
        self._prepare = prepare or _points_of
        self._quarantine = quarantine
        self._dead_letter = dead_letter
        self._consumer: Consumer | None = None
        self._unstored: tuple[Batch, pa.Table] | None = None
        self._per_message: float | None = None  # points per message seen so far: sizes each poll
        self._lock = threading.Lock()
        self._counts = Counts(0, 0, 0, 0, 0)
        self._latencies: deque[float] = deque(maxlen=latency_samples)

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """True while this loop is a member of its group."""
        return self._consumer is not None

    def start(self) -> Consumer:
        """Join the group (creating the topic if missing); idempotent."""
        if self._consumer is None:
            self.bus.create_topic(self.topic)
            self._consumer = self.bus.consumer(self.group, [self.topic])
        return self._consumer

    def close(self) -> None:
        """Leave the group (uncommitted messages go to the others or the next member).

        A batch whose store failed is kept: a loop started again retries it first.
        """
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # ---- one round -------------------------------------------------------------------
    def run_once(self, timeout: float = 1.0) -> Batch:
        """Retry a batch left unstored, then read, store and commit one batch; returns the new batch.

        The returned batch has no messages when none arrived within ``timeout`` seconds.
        """
        if self._unstored is not None:
            self._finish(*self._unstored)
        consumer = self.start()
        try:
            batch = self.fetch(timeout)
            if not batch.messages:
                return batch
            if batch.quarantine.num_rows:
                self._log_quarantined(batch)
                if self._quarantine is not None:
                    self._quarantine(batch.quarantine)
                if self._dead_letter is not None and batch.rejected:
                    self._dead_letter(batch.rejected)
            prepared = self._prepare(batch)
        except BaseException:
            consumer.seek_to_beginning()  # nothing kept of this batch: read it again next round
            raise
        self._finish(batch, prepared)
        return batch

    def fetch(self, timeout: float = 1.0) -> Batch:
        """Poll (waiting up to ``timeout`` s for the first message) and decode one batch; commits nothing."""
        consumer = self.start()
        parts: list[Batch] = []
        count = 0
        started = time.monotonic()
        while self.max_points is None or count < self.max_points:
            wanted = self.max_messages
            if self.max_points is not None:
                per_message = self._per_message or float(self.max_points)  # unknown yet: one message
                wanted = int(min(wanted, max(1, (self.max_points - count) / per_message)))
            polled = consumer.poll(max_messages=wanted, timeout=0 if parts else timeout)
            if not polled:
                break
            part = decode(polled, self.json_decoder)
            parts.append(part)
            got = part.points.num_rows
            count += got
            seen = max(1.0, got / len(polled))
            self._per_message = seen if self._per_message is None else (self._per_message + seen) / 2
            if self.max_points is None or time.monotonic() - started >= self.max_wait:
                break
        return _join(parts)

    def commit(self, batch: Batch, stored_rows: int, *, stored_ms: float | None = None) -> None:
        """Commit the offsets after the batch's messages (once what it produced is durable) and count it.

        ``stored_rows``: rows of the table stored for this batch; ``stored_ms``: when it was
        stored (ms since the epoch; default now), for the latencies.
        """
        if batch.messages:
            self.start().commit(batch.messages)
        stored_ms = time.time() * 1000.0 if stored_ms is None else stored_ms
        produced_ms = np.fromiter((m.timestamp_ms for m in batch.readable), "float64", len(batch.readable))
        with self._lock:
            self._latencies.extend((stored_ms - produced_ms).tolist())
            c = self._counts
            self._counts = Counts(
                c.batches + 1,
                c.messages + len(batch.messages),
                c.points + batch.points.num_rows,
                c.quarantined + batch.quarantine.num_rows,
                c.stored + stored_rows,
            )

    def counts(self) -> Counts:
        """What was committed so far (safe to call from any thread)."""
        with self._lock:
            return self._counts

    def latencies_ms(self) -> np.ndarray:
        """Latency of each recent readable message: ms from produced to stored (safe from any thread)."""
        with self._lock:
            return np.fromiter(self._latencies, dtype="float64", count=len(self._latencies))

    def _finish(self, batch: Batch, prepared: pa.Table) -> None:
        """Store then commit; on failure keep both for the next round and re-raise."""
        self._unstored = (batch, prepared)
        self._store(prepared)
        self.commit(batch, prepared.num_rows, stored_ms=time.time() * 1000.0)
        self._unstored = None

    def _log_quarantined(self, batch: Batch) -> None:
        first = batch.quarantine.slice(0, 1).to_pylist()[0]
        by_source = {message_source(m): m for m in batch.messages}
        m = by_source.get(first["source"])
        where = first["source"] if m is None else f"{m.topic}[{m.partition}]@{m.offset}"
        others = batch.quarantine.num_rows - 1
        log.warning(
            "%s: skipping malformed message %s: %s%s",
            self.name,
            where,
            first["reason"],
            f" (and {others} more record(s) quarantined)" if others else "",
        )


def _points_of(batch: Batch) -> pa.Table:
    return batch.points
