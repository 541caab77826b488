"""The Kafka topic source: a foreign topic's records brought in as points, the offsets in the catalog.

A ``[[sources]]`` entry of ``kind = "kafka"`` names a broker (``bootstrap``) and a topic that other
programs write — Kafka Connect's InfluxDB source connector, Telegraf, a plain producer. The source
reads every partition from the offsets saved as its watermark (no consumer group: the catalog is the
position, saved only after each batch is durable, like every source) and decodes the records in the
topic's ``format``:

* ``connect``: Kafka Connect ``JsonConverter`` envelopes ``{"schema", "payload"}`` (``schemas.enable=
  true``) or bare payloads (``false``) — of measurement records as the InfluxDB connector wrote them
  (``{"time": .., "measurement": "electricity", "zone": "FGE", "V": ..}`` →
  ``<source>/electricity/FGE.V``: text values are tags, as in InfluxDB) or of points; an envelope
  whose payload does not match its schema (a declared number holding text, a missing non-optional
  field, a schema that is no struct) is quarantined;
* ``json``: plain JSON points or measurement records;
* ``arrow``: sparkhu's own Arrow IPC messages;
* ``line``: InfluxDB line protocol (series ``<source>/<measurement>/<tag values>.<field>``);
* ``auto`` (default): Arrow when a message is Arrow, else JSON as ``connect``.

So the original's topic ``AMPds2_tests_electricity`` and the original's InfluxDB database land as the
same series. A record that cannot be used is quarantined with its topic/partition/offset and reason;
the others go on. A broker that stays unreachable for ``timeout_s`` raises one
:class:`~sparkhu.errors.ConnectorError` naming the connector, the topic and the offsets reached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from sparkhu.connectors.base import Position, QuarantineFn, Source, SourceSpec
from sparkhu.connectors.consume import decode, message_source
from sparkhu.errors import ConnectorError
from sparkhu.series import empty_points
from sparkhu.stream.base import Message
from sparkhu.stream.codecs import JsonDecoder, is_arrow, quarantine_table, raw_text
from sparkhu.stream.lineproto import parse_lines

__all__ = ["KafkaTopicSource", "KafkaTopicSourceSettings", "envelope_problem"]

log = logging.getLogger(__name__)

_NUMERIC = {"int8", "int16", "int32", "int64", "float", "float32", "float64", "double"}


def envelope_problem(doc: Any) -> tuple[str | None, str] | None:
    """``(field, reason)`` when a Connect envelope's payload does not match its schema; None when it does.

    >>> schema = {"type": "struct", "fields": [{"field": "V", "type": "double", "optional": False}]}
    >>> envelope_problem({"schema": schema, "payload": {"V": 1.5}}) is None
    True
    >>> envelope_problem({"schema": schema, "payload": {"V": "high"}})
    ('V', "schema says double, payload holds 'high'")
    """
    if not (isinstance(doc, dict) and "schema" in doc and "payload" in doc):
        return None
    schema, payload = doc["schema"], doc["payload"]
    if (
        not isinstance(schema, dict)
        or schema.get("type") != "struct"
        or not isinstance(schema.get("fields"), list)
    ):
        return None, "envelope schema is not a struct with fields"
    if not isinstance(payload, dict):
        return None, f"payload is {type(payload).__name__}, schema says struct"
    for declared in schema["fields"]:
        if not isinstance(declared, dict) or "field" not in declared:
            return None, "envelope schema has a field without a name"
        name, kind = declared["field"], declared.get("type")
        value = payload.get(name)
        if value is None:
            if not declared.get("optional", False):
                return name, f"missing, and the schema says it is not optional ({kind})"
            continue
        if kind in _NUMERIC and (isinstance(value, bool) or not isinstance(value, int | float)):
            return name, f"schema says {kind}, payload holds {value!r}"
        if kind == "string" and not isinstance(value, str):
            return name, f"schema says string, payload holds {value!r}"
    return None


class KafkaTopicSource(Source):
    """Read ``topic`` at ``bootstrap`` from the saved offsets (see the module docstring)."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        topic: str,
        *,
        source: str,
        format: str = "auto",
        json_decoder: JsonDecoder | None = None,
        max_messages: int = 10_000,
        poll_s: float | None = None,
        timeout_s: float = 30.0,
        client_config: Mapping[str, Any] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.name, self.bootstrap, self.topic, self.source = name, bootstrap, topic, source
        self.format = format
        self.decoder = json_decoder or JsonDecoder(source=source)
        self.max_messages, self.poll_s, self.timeout_s = max_messages, poll_s, timeout_s
        self.client_config = dict(client_config or {})
        self.stop = stop or threading.Event()
        self.who = f"kafka source {name!r}"

    def read(
        self, position: Mapping[str, Any] | None, quarantine: QuarantineFn
    ) -> Iterator[tuple[pa.Table, Position]]:
        """Batches after the offsets of ``position`` (``{"offsets": {partition: next offset}}``)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

        offsets = {int(p): int(o) for p, o in dict((position or {}).get("offsets", {})).items()}
        down: dict[str, Any] = {"since": None, "error": ""}

        def on_error(error: Any) -> None:  # lost connections come here, not as messages
            if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE):
                down["since"] = down["since"] or time.monotonic()
                down["error"] = error.str()

        config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": f"sparkhu-{self.name}",  # never joined nor committed: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "socket.connection.setup.timeout.ms": max(1000, int(self.timeout_s * 1000)),
            "reconnect.backoff.max.ms": 1000,
            "error_cb": on_error,
            "logger": log,
            **self.client_config,
        }
        consumer = Consumer(config)
        try:
            try:
                meta = consumer.list_topics(self.topic, timeout=self.timeout_s)
            except KafkaException as exc:
                raise ConnectorError(f"{self.who}: broker {self.bootstrap} unreachable: {exc}") from exc
            info = meta.topics.get(self.topic)
            if info is None or info.error is not None or not info.partitions:
                why = info.error.str() if info is not None and info.error is not None else "no partitions"
                raise ConnectorError(f"{self.who}: topic {self.topic!r} at {self.bootstrap}: {why}")
            partitions = sorted(info.partitions)
            follow = self.poll_s is not None
            at_end: set[int] = set()  # partitions whose end (an EOF event after their last record) was seen
            consumer.assign(
                [TopicPartition(self.topic, p, offsets.get(p, OFFSET_BEGINNING)) for p in partitions]
            )
            while True:
                if not follow and at_end.issuperset(partitions):
                    return
                if self.stop.is_set():
                    return
                raw = consumer.consume(self.max_messages, 0.2)
                messages: list[Message] = []
                for item in raw:
                    error = item.error()
                    if error is None:
                        at_end.discard(item.partition() or 0)
                        messages.append(
                            Message(
                                item.topic() or self.topic,
                                item.partition() or 0,
                                item.offset() or 0,
                                item.key(),
                                item.value() or b"",
                                item.timestamp()[1],
                            )
                        )
                    elif error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(item.partition() or 0)
                    elif error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                        on_error(error)
                    elif error.fatal() or not error.retriable():
                        raise ConnectorError(f"{self.who}: topic {self.topic!r}: {error.str()}")
                if messages:
                    down["since"] = None
                    for message in messages:
                        offsets[message.partition] = message.offset + 1
                    points = self._points(messages, quarantine)
                    yield points, {"offsets": {str(p): o for p, o in sorted(offsets.items())}}
                    continue
                if down["since"] is not None and time.monotonic() - down["since"] > self.timeout_s:
                    reached = ", ".join(f"{p}@{o}" for p, o in sorted(offsets.items())) or "none"
                    raise ConnectorError(
                        f"{self.who}: broker {self.bootstrap} lost while reading {self.topic!r} "
                        f"(offsets reached: {reached}): {down['error']}"
                    )
                if follow:
                    yield empty_points(), {"offsets": {str(p): o for p, o in sorted(offsets.items())}}
        finally:
            consumer.close()

    def _points(self, messages: Sequence[Message], quarantine: QuarantineFn) -> pa.Table:
        """The points of ``messages`` in this source's format; the rest quarantined."""
        if self.format == "line":
            tables, bad = [], []
            for message in messages:
                good, wrong = parse_lines(message.value, self.source, source=message_source(message))
                tables.append(good)
                bad.append(wrong)
            quarantine(pa.concat_tables(bad))
            return pa.concat_tables(tables)
        if self.format == "arrow":
            batch = decode(messages)
        else:
            usable: list[Message] = []
            rejected: list[tuple[str, str, str | None, str, str]] = []
            for message in messages:
                if self.format in ("connect", "auto") and not is_arrow(message.value):
                    try:
                        problem = envelope_problem(json.loads(message.value))
                    except ValueError:
                        problem = None  # the decoder quarantines text that is no JSON
                    if problem is not None:
                        where = f"offset {message.offset}"
                        rejected.append(
                            (message_source(message), where, problem[0], problem[1], raw_text(message.value))
                        )
                        continue
                usable.append(message)
            quarantine(quarantine_table(rejected))
            batch = decode(usable, self.decoder)
        quarantine(batch.quarantine)
        return batch.points


class KafkaTopicSourceSettings(SourceSpec):
    """A ``[[sources]]`` entry of ``kind = "kafka"``: a foreign topic (see the module docstring).

    >>> spec = KafkaTopicSourceSettings(name="old", kind="kafka", bootstrap="kafka://127.0.0.1:9092",
    ...     topic="AMPds2_tests_electricity", source="AMPds2", measurement="electricity", tag="zone")
    >>> spec.open().bootstrap
    '127.0.0.1:9092'
    """

    kind: Literal["kafka"] = "kafka"
    bootstrap: str = Field(pattern=r"^(kafka://)?[A-Za-z0-9_.\-]+:\d+(,[A-Za-z0-9_.\-]+:\d+)*$")
    """Brokers: ``kafka://host:port[,host:port]`` or ``host:port``."""
    topic: str = Field(pattern=r"^[A-Za-z0-9._\-]{1,249}$")
    format: Literal["auto", "connect", "json", "arrow", "line"] = "auto"
    tag: str | None = "*"
    """The record key naming the series besides its fields (the original's ``zone``); ``*`` (default):
    every text value in key order, as the InfluxDB source and line protocol name series; none: no tag."""
    fields: list[str] | None = None
    time_field: str = "time"
    ts_unit: Literal["s", "ms", "us"] = "ms"
    poll_s: float | None = Field(default=None, gt=0.0)
    """Follow the topic (idle polls this often at most); none: read to its current end and stop."""
    timeout_s: float = Field(default=30.0, gt=0.0)

    def open(self) -> KafkaTopicSource:
        """The connector this entry describes."""
        decoder = JsonDecoder(
            source=self.source,
            tag=self.tag,
            fields=self.fields,
            time_field=self.time_field,
            ts_unit=self.ts_unit,
        )
        return KafkaTopicSource(
            self.name,
            self.bootstrap.removeprefix("kafka://"),
            self.topic,
            source=self.source,
            format=self.format,
            json_decoder=decoder,
            poll_s=self.poll_s,
            timeout_s=self.timeout_s,
        )
