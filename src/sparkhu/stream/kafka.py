"""The Kafka bus: topics, partitions and consumer groups of a Kafka-protocol cluster (confluent-kafka).

``kafka://host:port[,host:port]`` names the bootstrap brokers. Records are routed by
:func:`~sparkhu.stream.base.partition_for` (CRC32 of the key, the series id), given to the
producer as an explicit partition, so a series lands in the same partition on this bus and
on the SQLite bus. :meth:`KafkaBus.produce` returns once the broker acknowledged every record
(``acks=all``, idempotent producer, no compression: Arrow payloads are zstd already).
Consumers (:class:`~sparkhu.stream.kafka_consumer.KafkaConsumer`) never auto-commit;
offsets are committed synchronously after the caller's output is durable.

Topic names are the caller's. The original system's Kafka Connect InfluxDB source wrote one
topic per measurement, ``<topic.prefix><measurement>`` (``AMPds2_tests_electricity``), as
JSON with schemas; consume such a topic with a :class:`~sparkhu.connectors.lake_sink.LakeSink`
given ``json_decoder=JsonDecoder(source="ampds2", tag="zone")`` and a group of its own.

Settings: ``client_config`` goes to every client (``security.protocol``, ``sasl.*``...),
``producer_config`` / ``consumer_config`` to one role only (e.g. ``session.timeout.ms``,
``heartbeat.interval.ms``, ``max.poll.interval.ms`` for fast group joins in tests).
``timeout`` bounds every blocking call: after it an unreachable cluster raises
:class:`~sparkhu.errors.BackendUnavailable` naming the URI; transient errors are retried
with back-off until then.

Brokers differ: Tansu 0.6 (the tests' broker, :mod:`sparkhu.stream.tansu`) answers
``ListOffsets`` with the last batch's base offset + 1, so :meth:`KafkaBus.end_offsets` reads
the true end from a fetch response; it creates a topic on a metadata request naming it, so
topic lookups list all topics; its group join waits about half the session timeout.

>>> from sparkhu.stream.tansu import TansuBroker
>>> with TansuBroker() as broker, KafkaBus(broker.uri, default_partitions=2) as bus:
...     bus.create_topic("points")
...     bus.produce("points", [(b"a", b"1"), (b"a", b"2"), (b"b", b"3")])
...     bus.partitions("points"), bus.end_offsets("points")
(2, {0: 0, 1: 3})
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlparse

from confluent_kafka import Consumer as _RawConsumer
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from sparkhu.errors import BackendUnavailable, BusError, ConfigError
from sparkhu.stream.base import Bus, check_partitions, check_records, check_topic, partition_for
from sparkhu.stream.kafka_consumer import KafkaConsumer, is_transient

__all__ = ["KafkaBus", "KafkaConsumer", "bootstrap_servers"]

_HOST_PORT_RE = re.compile(r"^[A-Za-z0-9._\-]+:(\d{1,5})$")
_METADATA_MAX_AGE_S = 30.0
_MAX_MESSAGE_BYTES = 256 << 20
T = TypeVar("T")

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "compression.type": "none",
    "linger.ms": 5,
    "batch.size": 64 << 20,
    "batch.num.messages": 10_000,
    "message.max.bytes": _MAX_MESSAGE_BYTES,
    "queue.buffering.max.kbytes": 1 << 21,
    "queue.buffering.max.messages": 1_000_000,
    "retry.backoff.ms": 100,
    "retry.backoff.max.ms": 1000,
}
"""Producer settings: durable, uncompressed, batches and messages sized for 50k-point Arrow payloads."""

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "fetch.max.bytes": 64 << 20,
    "max.partition.fetch.bytes": 16 << 20,
    "receive.message.max.bytes": _MAX_MESSAGE_BYTES + (1 << 20),
    "queued.max.messages.kbytes": 1 << 16,
    "fetch.wait.max.ms": 100,
}
"""Consumer settings: manual commits, from the start of a partition the group never committed."""


def bootstrap_servers(uri: str) -> str:
    """The ``bootstrap.servers`` value of a ``kafka://host:port[,host:port]`` URI.

    >>> bootstrap_servers("kafka://k1:9092,k2:9093")
    'k1:9092,k2:9093'
    """
    parsed = urlparse(uri) if isinstance(uri, str) else None
    if parsed is None or parsed.scheme != "kafka" or not parsed.netloc:
        raise ConfigError(f"bus URI {uri!r}: expected kafka://host:port[,host:port]")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or "@" in parsed.netloc:
        raise ConfigError(
            f"bus URI {uri!r}: only brokers go in a kafka:// URI; pass credentials as client_config"
        )
    servers = parsed.netloc.split(",")
    for server in servers:
        match = _HOST_PORT_RE.match(server)
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise ConfigError(f"bus URI {uri!r}: {server!r} is not host:port (port 1-65535)")
    return ",".join(servers)


class KafkaBus(Bus):
    """A :class:`~sparkhu.stream.base.Bus` on a Kafka-protocol cluster. Thread-safe; picklable.

    Clients are created on first use. ``idempotence`` needs a broker with ``InitProducerId``
    (Kafka ≥ 0.11, Tansu); ``replication`` is the replication factor of created topics
    (``-1``: the broker's default).
    """

    def __init__(
        self,
        uri: str,
        *,
        default_partitions: int = 4,
        timeout: float = 30.0,
        idempotence: bool = True,
        replication: int = -1,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        **client_config: Any,
    ) -> None:
        self.bootstrap = bootstrap_servers(uri)
        if not isinstance(default_partitions, int) or default_partitions < 1:
            raise ConfigError(
                f"bus {uri}: default_partitions must be an integer >= 1, got {default_partitions!r}"
            )
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"bus {uri}: timeout must be positive seconds, got {timeout!r}")
        self.uri = uri
        self.default_partitions = default_partitions
        self.timeout = float(timeout)
        self.idempotence = idempotence
        self.replication = replication
        self.client_config = dict(client_config)
        self.producer_config = dict(producer_config or {})
        self.consumer_config = dict(consumer_config or {})
        self._logger = logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._probe: _RawConsumer | None = None
        self._probe_lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}
        self._closed = False

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild, (
            self.uri,
            {
                "default_partitions": self.default_partitions,
                "timeout": self.timeout,
                "idempotence": self.idempotence,
                "replication": self.replication,
                "producer_config": self.producer_config,
                "consumer_config": self.consumer_config,
                **self.client_config,
            },
        )

    def __repr__(self) -> str:
        return f"KafkaBus({self.uri!r})"

    # -- clients --------------------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "client.id": "sparkhu",
            "socket.connection.setup.timeout.ms": max(1000, int(self.timeout * 1000)),
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 1000,
            "logger": self._logger,
            **self.client_config,
        }

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"Kafka bus {self.uri} is closed; open a new bus")

    def _get_admin(self) -> AdminClient:
        self._check_open()
        with self._lock:
            if self._admin is None:
                self._admin = self.client(AdminClient, self._base())
            return self._admin

    def _get_producer(self) -> Producer:
        self._check_open()
        with self._lock:
            if self._producer is None:
                config = {
                    **self._base(),
                    **PRODUCER_DEFAULTS,
                    "enable.idempotence": self.idempotence,
                    "delivery.timeout.ms": int(self.timeout * 1000),
                    **self.producer_config,
                }
                self._producer = self.client(Producer, config)
            return self._producer

    def consumer_settings(self, group: str) -> dict[str, Any]:
        """The full librdkafka configuration of a consumer of ``group`` on this bus."""
        return {**self._base(), **CONSUMER_DEFAULTS, "group.id": group, **self.consumer_config}

    def client(self, kind: Callable[[dict[str, Any]], T], config: dict[str, Any]) -> T:
        """A confluent-kafka client of ``kind`` made from ``config``; bad settings: :class:`ConfigError`."""
        try:
            return kind(config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"bus {self.uri}: invalid client configuration: {exc}") from exc

    def retry(self, action: str, call: Callable[[float], T]) -> T:
        """``call(remaining_seconds)``, retrying transient Kafka errors with back-off until ``timeout``."""
        deadline = time.monotonic() + self.timeout
        delay = 0.05
        while True:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                return call(remaining)
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                text = error.str() if error is not None else str(exc)
                if error is None or not is_transient(error):
                    raise BusError(f"Kafka bus {self.uri}: {action} failed: {text}") from exc
                if time.monotonic() + delay >= deadline:
                    raise BackendUnavailable(
                        self.uri,
                        f"{action}: {text} (gave up after {self.timeout:g} s; "
                        "is the broker running and its address right?)",
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- topics ---------------------------------------------------------------------------

    def topics(self) -> dict[str, int]:
        """Every topic (internal ``__`` ones excepted) with its partition count."""
        admin = self._get_admin()
        metadata = self.retry("list topics", lambda left: admin.list_topics(timeout=left))
        counts = {
            name: len(meta.partitions)
            for name, meta in metadata.topics.items()
            if not name.startswith("__") and meta.error is None
        }
        now = time.monotonic()
        with self._lock:
            self._counts.update({name: (now, count) for name, count in counts.items()})
        return dict(sorted(counts.items()))

    def topic_configs(self, topics: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, str]]:
        """The broker's values of the configs ``names`` (e.g. ``retention.ms``) of each topic; a name
        the broker reports no value for is absent."""
        admin = self._get_admin()
        wanted = set(names)

        def describe(left: float) -> dict[str, dict[str, str]]:
            resources = [ConfigResource("topic", check_topic(t)) for t in topics]
            futures = admin.describe_configs(resources, request_timeout=left) if resources else {}
            return {
                res.name: {
                    n: e.value for n, e in future.result().items() if n in wanted and e.value is not None
                }
                for res, future in futures.items()
            }

        return self.retry("describe topic configs", describe)

    def set_topic_configs(self, topic: str, values: Mapping[str, str]) -> None:
        """Set configs of ``topic`` (e.g. ``retention.ms``) with IncrementalAlterConfigs, leaving
        the others as they are."""
        admin = self._get_admin()
        entries = [ConfigEntry(n, v, incremental_operation=AlterConfigOpType.SET) for n, v in values.items()]
        resource = ConfigResource("topic", check_topic(topic), incremental_configs=entries)

        def alter(left: float) -> None:
            for future in admin.incremental_alter_configs([resource], request_timeout=left).values():
                future.result()

        self.retry(f"set configs {sorted(values)} of topic {topic!r}", alter)

    def _count(self, topic: str, *, fresh: bool = False) -> int:
        self._check_open()
        with self._lock:
            cached = self._counts.get(topic)
        if cached is not None and not fresh and time.monotonic() - cached[0] < _METADATA_MAX_AGE_S:
            return cached[1]
        count = self.topics().get(topic)
        if count is None:
            raise BusError(f"unknown topic {topic!r} on {self.uri}; create it with create_topic({topic!r})")
        return count

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` if missing; an existing topic must not be asked for another partition count."""
        count = check_partitions(
            check_topic(topic), self.default_partitions if partitions is None else partitions
        )
        existing = self.topics().get(topic)
        if existing is None:
            admin = self._get_admin()
            new = NewTopic(topic, num_partitions=count, replication_factor=self.replication)

            def create(left: float) -> None:
                for future in admin.create_topics(
                    [new], operation_timeout=left, request_timeout=left
                ).values():
                    try:
                        future.result()
                    except KafkaException as exc:
                        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                            raise

            self.retry(f"create topic {topic!r}", create)
            existing = self._count(topic, fresh=True)
        if partitions is not None and existing != partitions:
            raise BusError(
                f"topic {topic!r} on {self.uri} already has {existing} partitions, not {partitions}"
            )

    def partitions(self, topic: str) -> int:
        """Number of partitions of ``topic`` (read from the cluster, cached for 30 s)."""
        return self._count(check_topic(topic))

    # -- producing ------------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes]],
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Send ``records`` to the partitions of their keys; returns once the broker acknowledged all."""
        check_records(check_topic(topic), records)
        header_list: list[tuple[str, str | bytes | None]] | None = None
        if headers:
            if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers.items()):
                raise BusError(f"produce to {topic!r}: headers must map str to bytes")
            header_list = list(headers.items())
        if not records:
            return
        count = self._count(topic)
        producer = self._get_producer()
        failures: list[KafkaError] = []

        def report(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                failures.append(error)

        deadline = time.monotonic() + self.timeout
        for key, value in records:
            payload = value if isinstance(value, bytes) else bytes(value)
            while True:
                try:
                    producer.produce(
                        topic,
                        value=payload,
                        key=key,
                        partition=partition_for(key, count),
                        headers=header_list,
                        on_delivery=report,
                    )
                    break
                except BufferError:  # the local queue is full: let the broker catch up
                    if time.monotonic() > deadline:
                        raise BackendUnavailable(
                            self.uri,
                            f"produce to {topic!r}: the send queue stayed full for {self.timeout:g} s",
                        ) from None
                    producer.poll(0.05)
                except KafkaException as exc:
                    raise BusError(
                        f"produce to {topic!r} on {self.uri}: {exc.args[0].str()} "
                        f"(value of {len(payload):,} bytes; message.max.bytes is "
                        f"{self.producer_config.get('message.max.bytes', _MAX_MESSAGE_BYTES):,})"
                    ) from exc
        left = producer.flush(self.timeout + 5.0)
        if left or failures:
            self._counts.pop(topic, None)
        if left:
            raise BackendUnavailable(
                self.uri, f"produce to {topic!r}: {left} record(s) not acknowledged within {self.timeout:g} s"
            )
        if failures:
            first = failures[0]
            detail = (
                f"produce to {topic!r}: {len(failures)} of {len(records)} record(s) failed: {first.str()}"
            )
            if is_transient(first) or first.code() == KafkaError._MSG_TIMED_OUT:
                raise BackendUnavailable(self.uri, detail)
            raise BusError(f"Kafka bus {self.uri}: {detail}")

    # -- consuming ------------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        """Join ``group`` reading ``topics`` (which must exist); see :class:`KafkaConsumer`."""
        if not isinstance(group, str) or not group.strip():
            raise BusError(f"consumer group name {group!r} must be a non-empty string")
        if isinstance(topics, str) or not topics:
            raise BusError(
                f"consumer of group {group!r}: topics must be a non-empty list of names, got {topics!r}"
            )
        for topic in topics:
            self._count(check_topic(topic), fresh=True)
        return KafkaConsumer(self, group, sorted(set(topics)))

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to be written, per partition (the high watermark, as a fetch reports it)."""
        count = self._count(check_topic(topic), fresh=True)
        with self._probe_lock:
            if self._probe is None:
                self._probe = self.client(
                    _RawConsumer,
                    {
                        **self.consumer_settings(f"sparkhu-offsets-{uuid.uuid4().hex[:8]}"),
                        "enable.partition.eof": True,
                        "fetch.wait.max.ms": 10,
                        "max.partition.fetch.bytes": 1 << 20,
                    },
                )
            probe = self._probe
            ends: dict[int, int] = {}
            starts: list[TopicPartition] = []
            for partition in range(count):
                low, high = self.retry(
                    f"read end offsets of {topic!r}",
                    functools.partial(_watermarks, probe, TopicPartition(topic, partition)),
                )
                ends[partition] = high
                if high > low:  # Tansu's answer may lag: read from the last batch to the end
                    starts.append(TopicPartition(topic, partition, high - 1))
            if starts:
                self._read_ends(probe, topic, starts, ends)
        return ends

    def _read_ends(
        self, probe: _RawConsumer, topic: str, starts: list[TopicPartition], ends: dict[int, int]
    ) -> None:
        probe.assign(starts)
        pending = {tp.partition for tp in starts}
        deadline = time.monotonic() + self.timeout
        try:
            while pending and time.monotonic() < deadline:
                for message in probe.consume(10_000, 0.1):
                    error = message.error()
                    at_end = error is not None and error.code() == KafkaError._PARTITION_EOF
                    if error is not None and not at_end:
                        if is_transient(error):
                            continue
                        raise BusError(f"Kafka bus {self.uri}: read end offsets of {topic!r}: {error.str()}")
                    partition, offset = message.partition(), message.offset()
                    if partition is None or offset is None:  # only events that are not records lack them
                        continue
                    if at_end:
                        ends[partition] = max(ends[partition], offset)
                        pending.discard(partition)
                    else:
                        ends[partition] = max(ends[partition], offset + 1)
        finally:
            probe.unassign()
        if pending:
            raise BackendUnavailable(
                self.uri,
                f"end offsets of {topic!r} partitions {sorted(pending)} not read in {self.timeout:g} s",
            )

    def close(self) -> None:
        """Deliver what is queued and release the clients (consumers close on their own)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            producer, self._producer = self._producer, None
            self._admin = None
        if producer is not None:
            producer.flush(self.timeout)
        with self._probe_lock:
            probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()


def _rebuild(uri: str, options: dict[str, Any]) -> KafkaBus:
    return KafkaBus(uri, **options)


def _watermarks(probe: _RawConsumer, partition: TopicPartition, timeout: float) -> tuple[int, int]:
    """The low and high watermark of ``partition`` as the broker reports them now (not cached)."""
    return probe.get_watermark_offsets(partition, timeout=timeout, cached=False)
