"""Kafka interop: topics fed by plain Kafka clients and Kafka Connect, read by sparkhu, and back.

A plain confluent-kafka producer writes what the original InfluxDB source connector wrote
(``JsonConverter`` envelopes ``{schema, payload}`` of measurement records) and plain JSON
objects; the lake sink decodes them, quarantining bad records. sparkhu's Connect envelopes
are read by a plain consumer. A sink killed (SIGKILL) between its lake write and its commit
leaves every point in the lake exactly once after a restart.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from tests.connectors.conftest import INFLUX_SCHEMA

from sparkhu.connectors.lake_sink import LakeSink
from sparkhu.series import points
from sparkhu.storage.lake import Lake
from sparkhu.stream.codecs import JsonDecoder, encode_connect, publish_points
from sparkhu.stream.kafka import KafkaBus
from sparkhu.stream.tansu import TansuBroker

T0_MS = 1_609_426_800_000  # 2020-12-31T15:00:00Z
FAST_GROUPS = {"session.timeout.ms": 1500, "heartbeat.interval.ms": 100, "max.poll.interval.ms": 10_000}


@pytest.fixture
def bus(broker: TansuBroker) -> Iterator[KafkaBus]:
    with KafkaBus(broker.uri, default_partitions=2, timeout=10, consumer_config=FAST_GROUPS) as opened:
        yield opened


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def drain(sink: LakeSink, points_wanted: int, *, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while sink.points_written + sink.records_quarantined < points_wanted and time.monotonic() < deadline:
        sink.run_once(timeout=0.3)


def test_connect_envelopes_and_plain_json_from_a_plain_producer_reach_the_lake(
    bus: KafkaBus, tmp_path: Path
) -> None:
    topic = fresh("AMPds2_tests_electricity_")  # the original's <topic.prefix><measurement>
    bus.create_topic(topic)
    producer = Producer({"bootstrap.servers": bus.bootstrap})
    values = []
    for minute in range(30):
        record = {"time": T0_MS + minute * 60_000, "measurement": "electricity", "zone": "FGE"}
        record |= {"V": 120.0 + minute, "I": 1.5, "P": 33.0 * minute}
        values.append(json.dumps({"schema": INFLUX_SCHEMA, "payload": record}).encode())
    values.append(json.dumps({"series_id": "ampds2/electricity/WHE.P", "ts": T0_MS, "value": 7.5}).encode())
    values += [b"not json", json.dumps({"schema": INFLUX_SCHEMA, "payload": {"time": T0_MS}}).encode()]
    for value in values:
        producer.produce(topic, value=value, key=b"FGE")
    assert producer.flush(10) == 0
    del producer  # its own partitioner (not ours) chose the partitions: the sink reads them all
    lake = Lake(str(tmp_path / "lake"))
    decoder = JsonDecoder(source="ampds2", tag="zone")
    with LakeSink(bus, lake, topic, dataset="electricity", group=fresh("g"), json_decoder=decoder) as sink:
        drain(sink, 30 * 3 + 1 + 2)
    got = lake.read("raw", "electricity")
    assert got.num_rows == 91
    assert set(got.column("series_id").to_pylist()) == {
        "ampds2/electricity/FGE.V",
        "ampds2/electricity/FGE.I",
        "ampds2/electricity/FGE.P",
        "ampds2/electricity/WHE.P",
    }
    voltage = lake.read("raw", "electricity", series=["ampds2/electricity/FGE.V"])
    assert voltage.column("value").to_pylist() == [120.0 + m for m in range(30)]
    assert int(voltage.column("ts")[0].value) == T0_MS * 1000
    bad = lake.read_quarantine("electricity")
    assert bad.num_rows == 2 and "not json" in bad.column("raw").to_pylist()
    assert all(re.fullmatch(rf"{topic}/[01]/\d+", source) for source in bad.column("source").to_pylist())


def test_sparkhu_connect_envelopes_are_read_by_a_plain_consumer(bus: KafkaBus) -> None:
    topic = fresh("out_")
    bus.create_topic(topic, 1)
    table = points("ampds2/electricity/WHE.P", [T0_MS * 1000, T0_MS * 1000 + 60_000_000], [1.0, None])
    bus.produce(topic, [(b"ampds2/electricity/WHE.P", value) for value in encode_connect(table)])
    consumer = Consumer(
        {"bootstrap.servers": bus.bootstrap, "group.id": fresh("plain"), "auto.offset.reset": "earliest"}
        | FAST_GROUPS
    )
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 15
    while len(got) < 2 and time.monotonic() < deadline:
        got += [json.loads(m.value()) for m in consumer.consume(10, 0.2) if m.error() is None]
    consumer.close()
    assert [doc["payload"] for doc in got] == [
        {"series_id": "ampds2/electricity/WHE.P", "ts": T0_MS, "value": 1.0},
        {"series_id": "ampds2/electricity/WHE.P", "ts": T0_MS + 60_000, "value": None},
    ]
    assert got[0]["schema"]["fields"][1]["name"] == "org.apache.kafka.connect.data.Timestamp"


CHILD = """
import sys, time
from sparkhu.connectors.lake_sink import LakeSink
from sparkhu.storage.lake import Lake
from sparkhu.stream.kafka import KafkaBus
uri, lake_root, topic, group = sys.argv[1:5]
bus = KafkaBus(uri, timeout=10, consumer_config={config!r})
sink = LakeSink(bus, Lake(lake_root), topic, dataset="meters", group=group, max_points=3_000, max_wait=0.5)
chunk = sink.fetch(timeout=10)
sink.store(chunk)  # durable in the lake ...
print(chunk.points.num_rows, flush=True)
time.sleep(60)  # ... but never committed: the parent kills us here
"""


def test_a_sink_killed_between_write_and_commit_leaves_each_point_once(bus: KafkaBus, tmp_path: Path) -> None:
    topic, group = fresh("raw_meters_"), fresh("sink")
    ids = [f"ampds2/electricity/M{i}.P" for i in range(4)] * 2_000
    ts = [T0_MS * 1000 + (i // 4) * 60_000_000 for i in range(8_000)]
    table = points(ids, ts, [float(i) for i in range(8_000)])
    publish_points(bus, topic, table, max_rows=500)
    lake = Lake(str(tmp_path / "lake"))
    code = CHILD.format(config=FAST_GROUPS)
    command = [sys.executable, "-c", code, bus.uri, lake.root, topic, group]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            stored = int(child.stdout.readline())  # type: ignore[union-attr]
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert 0 < stored < 8_000 and lake.read("raw", "meters").num_rows == stored
    with LakeSink(bus, lake, topic, dataset="meters", group=group) as restarted:
        drain(restarted, 8_000)
        assert restarted.points_written == 8_000  # the killed sink's chunk came again
    assert lake.read("raw", "meters", dedup=False).num_rows == 8_000 + stored
    got = lake.read("raw", "meters")
    assert got.num_rows == 8_000
    assert sorted(got.column("value").to_pylist()) == [float(i) for i in range(8_000)]
