"""Kafka → lake sink on a local Tansu broker (memory storage): Arrow batches and one JSON point per message.

Arrow: publish 5M x scale points as zstd Arrow messages of 50k points (``publish_points``
over :class:`~sparkhu.stream.kafka.KafkaBus`), then time a :class:`LakeSink` draining them.
JSON: a plain confluent-kafka producer writes 500k x scale ``{"series_id", "ts", "value"}``
objects, one per message; a sink with a :class:`JsonDecoder` drains them. Targets: ≥ 1,000,000
and ≥ 100,000 points/s. The benchmark starts and stops its own broker.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

from bench import Result
from bench.bus_to_lake import make_points
from sparkhu.connectors.lake_sink import LakeSink
from sparkhu.storage.lake import Lake
from sparkhu.stream.codecs import JsonDecoder, encode_json, publish_points
from sparkhu.stream.kafka import KafkaBus
from sparkhu.stream.tansu import TansuBroker

NAME = "Kafka (Tansu) → lake sink"
ARROW_TARGET = 1_000_000.0
JSON_TARGET = 100_000.0
GROUPS = {"session.timeout.ms": 1500, "heartbeat.interval.ms": 100, "max.poll.interval.ms": 60_000}


def _drain(sink: LakeSink, total: int) -> float:
    """Seconds the sink took to write ``total`` points (the group join excluded)."""
    sink.run_once(timeout=10.0)  # joins the group and writes the first chunk
    started = time.perf_counter()
    first = sink.points_written
    while sink.points_written < total:
        if sink.run_once(timeout=2.0) == 0:
            break
    elapsed = time.perf_counter() - started
    return elapsed * total / max(1, sink.points_written - first)


def run(scale: float) -> list[Result]:
    arrow_total = max(200_000, int(5_000_000 * scale))
    json_total = max(50_000, int(500_000 * scale))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-kafka-") as tmp, TansuBroker() as broker:
        root = Path(tmp)
        with KafkaBus(broker.uri, default_partitions=4, consumer_config=GROUPS) as bus:
            table = make_points(arrow_total)
            started = time.perf_counter()
            messages = publish_points(bus, "raw.bench", table, max_rows=50_000)
            publish_s = time.perf_counter() - started
            lake = Lake(str(root / "lake"))
            with LakeSink(bus, lake, "raw.bench", dataset="bench", max_points=500_000) as sink:
                sink_s = _drain(sink, table.num_rows)
                written = sink.points_written
            rate = table.num_rows / sink_s
            results.append(
                Result(
                    NAME,
                    "Arrow publish (split, encode, produce, ack)",
                    table.num_rows / publish_s,
                    "points/s",
                    detail=f"{table.num_rows:,} points in {messages} messages",
                )
            )
            results.append(
                Result(
                    NAME,
                    "Arrow sink drain (poll, decode, lake write, commit)",
                    rate,
                    "points/s",
                    target=">= 1,000,000",
                    met=rate >= ARROW_TARGET and written == table.num_rows,
                    detail=f"{written:,} points written",
                )
            )

            bus.create_topic("raw.json", 4)
            values = encode_json(make_points(json_total, seed=1))
            producer = Producer(
                {"bootstrap.servers": bus.bootstrap, "linger.ms": 20, "batch.num.messages": 10_000}
            )
            started = time.perf_counter()
            for index, value in enumerate(values):
                while True:
                    try:
                        producer.produce("raw.json", value=value, partition=index % 4)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.flush(60)
            produce_s = time.perf_counter() - started
            decoder = JsonDecoder()
            with LakeSink(
                bus, lake, "raw.json", dataset="json", json_decoder=decoder, max_points=100_000
            ) as sink:
                sink_s = _drain(sink, len(values))
                written = sink.points_written
            rate = len(values) / sink_s
            results.append(
                Result(
                    NAME,
                    "JSON produce (plain producer, 1 point/message)",
                    len(values) / produce_s,
                    "points/s",
                    detail=f"{len(values):,} messages",
                )
            )
            results.append(
                Result(
                    NAME,
                    "JSON sink drain (poll, decode, lake write, commit)",
                    rate,
                    "points/s",
                    target=">= 100,000",
                    met=rate >= JSON_TARGET and written == len(values),
                    detail=f"{written:,} points written",
                )
            )
    return results
