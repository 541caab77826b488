"""Members of Kafka consumer groups: polling, synchronous commits, rebalances, broker loss.

A :class:`KafkaConsumer` wraps one confluent-kafka consumer subscribed to its topics. The
group coordinator assigns partitions (eager ``range``/``roundrobin`` assignors; a joining,
leaving or dying member rebalances the group, and every member resumes from the committed
offsets of what it is given). Offsets are committed only when the caller says so, with
``asynchronous=False``, and only for partitions the member still owns: a commit for a
partition lost in a rebalance is dropped and its messages are delivered again to their new
owner (at-least-once; sinks are idempotent). A broker that stays unreachable for the bus's
``timeout`` turns a poll into :class:`~sparkhu.errors.BackendUnavailable` naming the URI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Consumer as _RawConsumer

from sparkhu.errors import BackendUnavailable, BusError
from sparkhu.stream.base import Consumer, Message

TopicPartitionKey = tuple[str, int]
T = TypeVar("T")


class KafkaClients(Protocol):
    """What a consumer needs of its bus, a :class:`~sparkhu.stream.kafka.KafkaBus`.

    Named here so that this module does not import the bus module, which imports it.
    """

    uri: str
    timeout: float

    def consumer_settings(self, group: str) -> dict[str, Any]:
        """The librdkafka configuration of a consumer of ``group``."""
        ...

    def client(self, kind: Callable[[dict[str, Any]], T], config: dict[str, Any]) -> T:
        """A confluent-kafka client of ``kind`` made from ``config``."""
        ...

    def retry(self, action: str, call: Callable[[float], T]) -> T:
        """``call(remaining_seconds)``, retrying transient errors until the bus's timeout."""
        ...


_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._WAIT_COORD,
    KafkaError._RESOLVE,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}
_BROKER_DOWN = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}
_LOST = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError._ASSIGNMENT_LOST,
    KafkaError._STATE,
}


def is_transient(error: KafkaError) -> bool:
    """True for errors worth retrying: lost connections, timeouts, moving leaders and coordinators."""
    return error.code() in _TRANSIENT or bool(error.retriable())


class KafkaConsumer(Consumer):
    """A member of a consumer group on a :class:`~sparkhu.stream.kafka.KafkaBus`. Not thread-safe.

    It joins on its first poll (or :meth:`assignment`/:meth:`committed`, which wait for the
    join); the librdkafka background thread heartbeats, so processing between polls may take
    up to ``max.poll.interval.ms``.
    """

    def __init__(self, bus: KafkaClients, group: str, topics: list[str]) -> None:
        self.group = group
        self.topics = topics
        self._bus = bus
        self._uri = bus.uri
        self._timeout = bus.timeout
        self._assigned: set[TopicPartitionKey] = set()
        self._positions: dict[TopicPartitionKey, int] = {}
        self._pending: list[Message] = []
        self._joined = False
        self._down_since: float | None = None
        self._down_error = ""
        self._closed = False
        raw = bus.client(_RawConsumer, {**bus.consumer_settings(group), "error_cb": self._error_cb})
        self._raw = raw
        try:
            raw.subscribe(
                topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
        except KafkaException as exc:
            raw.close()
            raise BusError(f"Kafka bus {self._uri}: subscribe {topics} for group {group!r}: {exc}") from exc

    # -- rebalance callbacks (run inside poll) ---------------------------------------------

    def _on_assign(self, _raw: Any, partitions: list[TopicPartition]) -> None:
        self._joined = True
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)

    def _on_revoke(self, _raw: Any, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        for tp in gone:
            self._positions.pop(tp, None)
        self._pending = [m for m in self._pending if (m.topic, m.partition) not in gone]

    # -- reading ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"consumer of group {self.group!r} on {self._uri} is closed")

    def _convert(self, raw_messages: list[Any]) -> list[Message]:
        messages: list[Message] = []
        for raw in raw_messages:
            error = raw.error()
            if error is not None:
                self._on_error(error)
                continue
            headers = raw.headers()
            messages.append(
                Message(
                    raw.topic(),
                    raw.partition(),
                    raw.offset(),
                    raw.key(),
                    raw.value() or b"",
                    raw.timestamp()[1],
                    {k: v or b"" for k, v in headers} if headers else {},
                )
            )
        if messages:
            self._down_since = None
            for message in messages:
                self._positions[(message.topic, message.partition)] = message.offset + 1
        return messages

    def _on_error(self, error: KafkaError) -> None:
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            return
        if code in _BROKER_DOWN:
            if self._down_since is None:
                self._down_since = time.monotonic()
            self._down_error = error.str()
            return
        if is_transient(error):
            return
        if error.fatal() or code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            raise BusError(f"consumer of group {self.group!r} on {self._uri}: {error.str()}")

    def _error_cb(self, error: KafkaError) -> None:
        self._on_error(error)

    def _check_broker(self) -> None:
        """Raise :class:`BackendUnavailable` when the brokers have been unreachable for ``timeout`` s."""
        if self._down_since is None or time.monotonic() - self._down_since < self._timeout:
            return
        try:
            self._raw.list_topics(timeout=min(2.0, self._timeout))
        except KafkaException:
            raise BackendUnavailable(
                self._uri,
                f"consumer of group {self.group!r}: no broker answered for {self._timeout:g} s "
                f"({self._down_error}); is the broker running?",
            ) from None
        self._down_since = None

    def _consume(self, max_messages: int, timeout: float) -> list[Message]:
        try:
            if timeout <= 0:
                return self._convert(self._raw.consume(max_messages, 0))
            first = self._raw.poll(timeout)
            if first is None:
                return []
            batch = [first]
            if max_messages > 1:
                batch += self._raw.consume(max_messages - 1, 0)
            return self._convert(batch)
        except KafkaException as exc:
            raise BusError(f"consumer of group {self.group!r} on {self._uri}: poll failed: {exc}") from exc

    def poll(self, max_messages: int = 1000, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages of owned partitions, once some arrived (or after ``timeout`` s)."""
        self._check_open()
        if not isinstance(max_messages, int) or max_messages < 1:
            raise BusError(
                f"poll of group {self.group!r}: max_messages must be an integer >= 1, got {max_messages!r}"
            )
        if self._pending:
            taken, self._pending = self._pending[:max_messages], self._pending[max_messages:]
            return taken
        deadline = time.monotonic() + max(0.0, timeout)
        messages = self._consume(max_messages, 0)
        while not messages:
            self._check_broker()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages = self._consume(max_messages, min(remaining, 0.5))
        return messages

    def assignment(self) -> list[TopicPartitionKey]:
        """The (topic, partition) pairs this member owns, waiting for the group join (up to ``timeout``)."""
        self._check_open()
        deadline = time.monotonic() + self._timeout
        while not self._joined:
            self._check_broker()
            if time.monotonic() >= deadline:
                raise BackendUnavailable(
                    self._uri, f"consumer of group {self.group!r} not assigned within {self._timeout:g} s"
                )
            self._pending.extend(self._consume(10_000, 0.1))
        return sorted(self._assigned)

    # -- offsets ---------------------------------------------------------------------------

    def commit(self, messages: Sequence[Message] | None = None) -> None:
        """Synchronously commit the position after ``messages`` (default: all polled) of owned partitions."""
        self._check_open()
        if messages is None:
            offsets = dict(self._positions)
        else:
            offsets = {}
            for message in messages:
                tp = (message.topic, message.partition)
                offsets[tp] = max(offsets.get(tp, 0), message.offset + 1)
        owned = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items()) if (t, p) in self._assigned]
        if not owned:
            return

        def commit(_left: float) -> list[TopicPartition] | None:
            return self._raw.commit(offsets=owned, asynchronous=False)

        try:
            results = self._bus.retry(f"commit offsets of group {self.group!r}", commit)
        except BusError as exc:
            cause = exc.__cause__
            if isinstance(cause, KafkaException) and cause.args[0].code() in _LOST | {KafkaError._NO_OFFSET}:
                return  # partitions lost in a rebalance: their new owner reads them again
            raise
        bad = [
            f"{tp.topic}[{tp.partition}]: {tp.error.str()}"
            for tp in results or []
            if tp.error is not None and tp.error.code() not in _LOST
        ]
        if bad:
            raise BusError(f"commit of group {self.group!r} on {self._uri}: " + ", ".join(bad))

    def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed next offset of each owned partition that has a commit."""
        owned = [TopicPartition(t, p) for t, p in self.assignment()]
        if not owned:
            return {}
        result = self._bus.retry(
            f"read committed offsets of group {self.group!r}",
            lambda left: self._raw.committed(owned, timeout=left),
        )
        return {(tp.topic, tp.partition): tp.offset for tp in result if tp.offset >= 0}

    def seek_to_beginning(self) -> None:
        """Forget uncommitted progress: the next poll reads from the committed offsets (or the start)."""
        self._check_open()
        self._pending.clear()
        self._positions.clear()
        if not self._assigned:
            return
        committed = self._raw.committed(
            [TopicPartition(t, p) for t, p in sorted(self._assigned)], self._timeout
        )
        for tp in committed:
            target = TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            try:
                self._raw.seek(target)
            except KafkaException:  # not fetching yet: re-assigning sets the position instead
                self._raw.incremental_unassign([TopicPartition(tp.topic, tp.partition)])
                self._raw.incremental_assign([target])

    def close(self) -> None:
        """Leave the group at once (the others take over its partitions); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._raw.close()
        except (KafkaException, RuntimeError):
            pass
