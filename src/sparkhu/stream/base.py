"""The bus contract: topics, partitions keyed by series, consumer groups, committed offsets.

Delivery is at-least-once: a consumer commits an offset only after its output is durable,
so after a crash it sees again what it had not committed, and sinks are idempotent.
One implementation per module: :mod:`sparkhu.stream.sqlite` (embedded log, safe across
processes) and, later, :mod:`sparkhu.stream.kafka`. :func:`sparkhu.stream.open_bus` picks
one by URI. Payloads are bytes; :mod:`sparkhu.stream.codecs` turns Arrow tables into
payloads and back.
"""

from __future__ import annotations

import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from sparkhu.errors import BusError

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")


@dataclass(frozen=True)
class Message:
    """One record read from a topic partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: dict[str, bytes] = field(default_factory=dict)


def partition_for(key: bytes | None, partitions: int) -> int:
    """The partition a key goes to: stable across processes and runs (CRC32, not ``hash``)."""
    if key is None or partitions <= 1:
        return 0
    return zlib.crc32(key) % partitions


def check_topic(topic: object) -> str:
    """``topic`` if it is a valid topic name (Kafka's rule, kept by every bus), else :class:`BusError`."""
    if not isinstance(topic, str) or not _TOPIC_RE.match(topic):
        raise BusError(f"topic name {topic!r} is invalid: use 1-249 letters, digits and . _ -")
    return topic


def check_partitions(topic: str, partitions: object) -> int:
    """``partitions`` if it is a usable partition count for ``topic``, else :class:`BusError`."""
    if not isinstance(partitions, int) or not 1 <= partitions <= 4096:
        raise BusError(f"topic {topic!r}: partitions must be an integer in 1..4096, got {partitions!r}")
    return partitions


def check_records(topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Raise :class:`BusError` naming the first record that is not a ``(key, value)`` pair of bytes."""
    for index, record in enumerate(records):
        if (
            not isinstance(record, tuple)
            or len(record) != 2
            or not isinstance(record[1], bytes | bytearray | memoryview)
            or not (record[0] is None or isinstance(record[0], bytes))
        ):
            raise BusError(
                f"produce to {topic!r}: record {index} is not a (key bytes|None, value bytes) pair"
            )


class Consumer(ABC):
    """A member of a consumer group reading some topics. Not thread-safe; one per thread."""

    @abstractmethod
    def poll(self, max_messages: int = 1000, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages after this member's position, waiting at most ``timeout`` s."""

    @abstractmethod
    def commit(self, messages: Sequence[Message] | None = None) -> None:
        """Commit the position after ``messages`` (default: everything polled so far)."""

    @abstractmethod
    def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed next-offset per (topic, partition) assigned to this member."""

    @abstractmethod
    def seek_to_beginning(self) -> None:
        """Forget uncommitted progress and read from the committed offsets (or the start)."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group; uncommitted messages will be delivered again to the group."""

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Bus(ABC):
    """A log of topics split in partitions. Thread-safe; shareable within a process."""

    uri: str

    @abstractmethod
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` if missing (idempotent); ``None`` uses the bus default."""

    @abstractmethod
    def partitions(self, topic: str) -> int:
        """Number of partitions of ``topic``; raises :class:`~sparkhu.errors.BusError` if missing."""

    @abstractmethod
    def produce(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes]],
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Append ``(key, value)`` records durably; a key always goes to the same partition.

        Returns once the records are durable (fsync'd log / acknowledged by the broker).
        """

    @abstractmethod
    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """Join ``group`` reading ``topics``; partitions are shared among the group's members."""

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to be written, per partition (for lag)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most buses hold nothing to release
        """Release connections."""

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
