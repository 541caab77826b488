"""What only the Kafka bus has: URIs, client settings, broker quirks, unreachable and lost brokers."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from sparkhu.config import Settings
from sparkhu.errors import BackendUnavailable, BusError, ConfigError
from sparkhu.stream import open_bus
from sparkhu.stream.kafka import KafkaBus, bootstrap_servers
from sparkhu.stream.tansu import TansuBroker, free_port

Names = Callable[[str], str]


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("kafka://", "expected kafka://host:port"),
        ("sqlite:///x.db", "expected kafka://host:port"),
        ("kafka://host", "'host' is not host:port"),
        ("kafka://a:9092,b", "'b' is not host:port"),
        ("kafka://a:99999", "port 1-65535"),
        ("kafka://a:9092/topic", "only brokers go in a kafka:// URI"),
        ("kafka://user:pw@a:9092", "only brokers go in a kafka:// URI"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        KafkaBus(uri)


def test_uri_lists_bootstrap_servers_and_bad_settings_are_config_errors(tansu: TansuBroker) -> None:
    assert bootstrap_servers("kafka://k1:9092,k2:9093/") == "k1:9092,k2:9093"
    with pytest.raises(ConfigError, match="default_partitions must be an integer >= 1"):
        KafkaBus(tansu.uri, default_partitions=0)
    with pytest.raises(ConfigError, match="timeout must be positive"):
        KafkaBus(tansu.uri, timeout=0)
    with (
        KafkaBus(tansu.uri, producer_config={"compression.type": "squeeze"}) as bus,
        pytest.raises(ConfigError, match=r"invalid client configuration.*compression"),
    ):
        bus.create_topic("settings-check", 1)
        bus.produce("settings-check", [(None, b"x")])


def test_open_bus_picks_kafka_and_a_pickled_bus_reconnects(tansu: TansuBroker, unique: Names) -> None:
    topic = unique("t")
    with open_bus(tansu.uri, default_partitions=3) as bus:
        assert isinstance(bus, KafkaBus) and repr(bus) == f"KafkaBus({tansu.uri!r})"
        bus.create_topic(topic)
        assert bus.topics()[topic] == 3
        copy = pickle.loads(pickle.dumps(bus))
        copy.produce(topic, [(b"k", b"v")])
        assert copy.default_partitions == 3 and sum(bus.end_offsets(topic).values()) == 1
        copy.close()


def test_bus_settings_reach_the_kafka_clients_with_dotted_keys(tansu: TansuBroker) -> None:
    settings = Settings.load(
        toml_path=None,
        env={
            "SPARKHU_BUS__URI": tansu.uri,
            "SPARKHU_BUS__CONSUMER__SESSION_TIMEOUT_MS": "1500",
            "SPARKHU_BUS__CLIENT__CLIENT_ID": "sparkhu-test",
        },
    )
    assert settings.bus.consumer == {"session_timeout_ms": "1500"}
    with open_bus(settings.bus.uri, client=settings.bus.client, consumer=settings.bus.consumer) as bus:
        config = bus.consumer_settings("g")  # type: ignore[attr-defined]
        assert config["session.timeout.ms"] == "1500" and config["client.id"] == "sparkhu-test"
        assert config["enable.auto.commit"] is False


def test_end_offsets_count_records_a_foreign_producer_batched(kafka_bus: KafkaBus, unique: Names) -> None:
    topic = unique("t")
    kafka_bus.create_topic(topic, 2)
    producer = Producer({"bootstrap.servers": kafka_bus.bootstrap, "linger.ms": 50})
    for i in range(50):
        producer.produce(topic, value=str(i).encode(), partition=i % 2)
    assert producer.flush(10) == 0
    assert kafka_bus.end_offsets(topic) == {0: 25, 1: 25}


def test_a_value_over_message_max_bytes_is_a_bus_error(tansu: TansuBroker, unique: Names) -> None:
    topic = unique("t")
    with KafkaBus(tansu.uri, producer_config={"message.max.bytes": 1_000_000}) as bus:
        bus.create_topic(topic, 1)
        with pytest.raises(BusError, match=rf"produce to '{topic}'.*2,000,000 bytes.*message\.max\.bytes"):
            bus.produce(topic, [(None, b"x" * 2_000_000)])


def test_an_unreachable_broker_is_named_within_the_timeout() -> None:
    uri = f"kafka://127.0.0.1:{free_port()}"
    with KafkaBus(uri, timeout=1.0) as bus:
        for call in (
            lambda: bus.partitions("t"),
            lambda: bus.create_topic("t"),
            lambda: bus.consumer("g", ["t"]),
        ):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match=rf"cannot reach {uri}: .*gave up after 1 s"):
                call()
            assert time.monotonic() - started < 4


def test_a_broker_lost_mid_stream_fails_polls_and_produces_with_the_uri(unique: Names) -> None:
    with TansuBroker() as broker:
        bus = KafkaBus(
            broker.uri,
            timeout=3.0,  # long enough for a loaded CI machine; the bounds below follow from it
            consumer_config={"session.timeout.ms": 1500, "heartbeat.interval.ms": 100},
        )
        bus.create_topic("live", 2)
        bus.produce("live", [(f"k{i}".encode(), b"v") for i in range(10)])
        consumer = bus.consumer("g", ["live"])
        got: list[object] = []
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            got += consumer.poll(timeout=0.2)
        assert len(got) == 10
        broker.stop()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=rf"cannot reach {broker.uri}: .*no broker answered"):
            while time.monotonic() - started < 15:
                consumer.poll(timeout=0.5)
        assert time.monotonic() - started < 12
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=rf"cannot reach {broker.uri}: produce to 'live'"):
            bus.produce("live", [(b"k", b"lost")])
        assert time.monotonic() - started < 15
        consumer.close()
        bus.close()
