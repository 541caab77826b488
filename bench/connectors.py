"""Connectors against their floors, in the same run (A/B/B/A): InfluxDB → lake, HTTP push, Kafka topic → lake.

* **InfluxDB → lake**: 300k x scale points (electricity, 3 zones x 2 fields, minutely) in a local
  ``influxd``; ours: the ``influxdb`` source through ``ingest_to_lake`` (chunked query, points, lake
  write, watermark); peer: a plain paginated read of the same data with the HTTP API (``LIMIT``/time
  pages, ``json.loads``) into one Arrow table — the floor of any connector, writing nothing.
* **HTTP push**: one body of 100k x scale points; ours: the gateway's ``/write`` (line protocol) and
  ``/api/push`` (Telegraf JSON) landing in the lake; peer: InfluxDB's own ``/write`` of the same points
  as line protocol.
* **Kafka topic → lake**: 100k x scale Kafka Connect envelopes (with schemas, the original's records)
  on a local Tansu broker; ours: the ``kafka`` source through ``ingest_to_lake``; peer: a plain
  confluent-kafka consumer + ``json.loads`` + ``pyarrow`` table.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pyarrow as pa
import uvicorn
from confluent_kafka import Consumer, Producer

from bench import Result, interleaved
from sparkhu.config import GatewaySettings
from sparkhu.connectors.influx_client import InfluxClient
from sparkhu.connectors.influx_server import InfluxServer
from sparkhu.connectors.influxdb import InfluxSource
from sparkhu.connectors.kafka_topic import KafkaTopicSource
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import JsonDecoder
from sparkhu.stream.tansu import TansuBroker

NAME = "connectors"
T0_S = 1_609_426_800
ZONES = ("WHE", "FGE", "B1E")
TOKEN = "bench"
SCHEMA = {
    "type": "struct",
    "optional": False,
    "fields": [
        {
            "field": "time",
            "type": "int64",
            "optional": False,
            "name": "org.apache.kafka.connect.data.Timestamp",
        },
        {"field": "measurement", "type": "string", "optional": False},
        {"field": "zone", "type": "string", "optional": True},
        {"field": "P", "type": "double", "optional": True},
        {"field": "Q", "type": "double", "optional": True},
    ],
}


def _lines(minutes: int, start: int = 0) -> bytes:
    return "".join(
        f"electricity,zone={z} P={m % 977}.5,Q={m % 13}.25 {(T0_S + 60 * m) * 10**9}\n"
        for m in range(start, start + minutes)
        for z in ZONES
    ).encode()


def _paginated_read(url: str, db: str, page: int) -> pa.Table:
    """The floor: time-paged InfluxQL over HTTP into one Arrow table of rows (no series ids, no lake)."""
    tables = []
    since = -1
    while True:
        q = f'SELECT * FROM "electricity" WHERE time > {since} ORDER BY time ASC LIMIT {page}'
        query = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"})
        with urllib.request.urlopen(f"{url}/query?{query}") as response:
            doc = json.loads(response.read())
        series = doc["results"][0].get("series")
        if not series:
            break
        columns, values = series[0]["columns"], series[0]["values"]
        data = list(zip(*values, strict=True))
        tables.append(pa.table({c: list(col) for c, col in zip(columns, data, strict=True)}))
        since = values[-1][0]  # a page may cut a timestamp: the floor ignores it (a real reader cannot)
        if len(values) < page:
            break
    return pa.concat_tables(tables)


def _influx(root: Path, scale: float) -> list[Result]:
    minutes = max(2_000, int(50_000 * scale))
    points = minutes * len(ZONES) * 2
    results = []
    with InfluxServer(root / "influx") as server:
        client = InfluxClient(server.url, who="bench")
        client.execute('CREATE DATABASE "AMPds2"')
        for start in range(0, minutes, 5_000):
            client.write("AMPds2", _lines(min(5_000, minutes - start), start))
        runs = itertools.count()

        def ours() -> None:
            n = next(runs)
            catalog = Catalog(f"sqlite:///{root}/influx-{n}.db")
            source = InfluxSource("amp", server.url, "AMPds2", "electricity", chunk_size=10_000)
            stats = ingest_to_lake(source, Lake(str(root / f"lake-{n}")), catalog, dataset="amp")
            catalog.close()
            assert stats.points == points, stats

        def peer() -> None:
            table = _paginated_read(server.url, "AMPds2", 10_000)
            assert table.num_rows * 2 >= points - 2 * 10_000

        ours_s, peer_s = interleaved(ours, peer, rounds=1)
        results.append(
            Result(
                NAME,
                "InfluxDB → lake (influxdb source, chunked)",
                points / ours_s,
                "points/s",
                peer="paginated InfluxQL HTTP read into Arrow (no lake)",
                ratio=peer_s / ours_s,
                detail=f"{points:,} points; ours {ours_s:.2f} s, peer {peer_s:.2f} s",
            )
        )
        results += _push(root, server, scale)
    return results


def _serve(root: Path) -> tuple[uvicorn.Server, str, Catalog]:
    catalog = Catalog(f"sqlite:///{root}/gateway.db")
    services = GatewayServices(
        Lake(str(root / "push-lake")),
        catalog,
        PredictionStore(catalog.engine),
        settings=GatewaySettings(token=TOKEN),
    )
    config = uvicorn.Config(
        create_app(services), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", catalog


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type},
    )
    with urllib.request.urlopen(request) as response:
        return int(response.status)


def _push(root: Path, influx: InfluxServer, scale: float) -> list[Result]:
    minutes = max(1_000, int(16_000 * scale))
    points = minutes * len(ZONES) * 2
    client = InfluxClient(influx.url, who="bench")
    client.execute('CREATE DATABASE "peer"')
    server, url, catalog = _serve(root)
    results = []
    try:
        rounds = itertools.count()

        def body(n: int) -> bytes:
            return _lines(minutes, start=n * minutes)

        def ours_lines() -> None:
            assert _post(f"{url}/write?db=AMPds2", body(next(rounds)), "text/plain") == 204

        def peer_lines() -> None:
            assert _post(f"{influx.url}/write?db=peer", body(next(rounds)), "text/plain") == 204

        ours_s, peer_s = interleaved(ours_lines, peer_lines, rounds=1)
        results.append(
            Result(
                NAME,
                "HTTP push, line protocol (gateway /write → lake)",
                points / ours_s,
                "points/s",
                peer="InfluxDB 1.6 /write of the same body",
                ratio=peer_s / ours_s,
                detail=f"{points:,} points per body; ours {ours_s:.2f} s, peer {peer_s:.2f} s",
            )
        )

        def metrics(n: int) -> bytes:
            items = [
                {
                    "name": "electricity",
                    "tags": {"zone": z},
                    "fields": {"P": m % 977 + 0.5, "Q": m % 13 + 0.25},
                    "timestamp": T0_S + 60 * m,
                }
                for m in range(n * minutes, (n + 1) * minutes)
                for z in ZONES
            ]
            return json.dumps({"metrics": items}).encode()

        def ours_json() -> None:
            assert _post(f"{url}/api/push?db=AMPds2", metrics(next(rounds)), "application/json") == 200

        ours_s, peer_s = interleaved(ours_json, peer_lines, rounds=1)
        results.append(
            Result(
                NAME,
                "HTTP push, JSON (gateway /api/push, Telegraf metrics → lake)",
                points / ours_s,
                "points/s",
                peer="InfluxDB 1.6 /write of the same points (line protocol)",
                ratio=peer_s / ours_s,
                detail=f"{points:,} points per body; ours {ours_s:.2f} s, peer {peer_s:.2f} s",
            )
        )
    finally:
        server.should_exit = True
        catalog.close()
    return results


def _kafka(root: Path, scale: float) -> list[Result]:
    records = max(5_000, int(100_000 * scale))
    points = records * 2
    with TansuBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.address, "linger.ms": 20})
        for m in range(records):
            payload = {
                "time": (T0_S + 60 * m) * 1000,
                "measurement": "electricity",
                "zone": ZONES[m % 3],
                "P": m % 977 + 0.5,
                "Q": m % 13 + 0.25,
            }
            value = json.dumps({"schema": SCHEMA, "payload": payload}).encode()
            while True:
                try:
                    producer.produce("AMPds2_tests_electricity", value=value, partition=0)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(60)
        runs = itertools.count()

        def ours() -> None:
            n = next(runs)
            catalog = Catalog(f"sqlite:///{root}/kafka-{n}.db")
            source = KafkaTopicSource(
                "k",
                broker.address,
                "AMPds2_tests_electricity",
                source="AMPds2",
                json_decoder=JsonDecoder(source="AMPds2", tag="*"),
            )
            stats = ingest_to_lake(source, Lake(str(root / f"klake-{n}")), catalog, dataset="amp")
            catalog.close()
            assert stats.points == points, stats

        def peer() -> None:
            consumer = Consumer(
                {
                    "bootstrap.servers": broker.address,
                    "group.id": f"peer-{next(runs)}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                }
            )
            consumer.subscribe(["AMPds2_tests_electricity"])
            columns: dict[str, list] = {"time": [], "zone": [], "P": [], "Q": []}
            while len(columns["time"]) < records:
                for message in consumer.consume(10_000, 1.0):
                    if message.error() is None:
                        payload = json.loads(message.value())["payload"]
                        for key in columns:
                            columns[key].append(payload[key])
            pa.table(columns)
            consumer.close()

        ours_s, peer_s = interleaved(ours, peer, rounds=1)
    return [
        Result(
            NAME,
            "Kafka topic (Connect JSON envelopes) → lake",
            points / ours_s,
            "points/s",
            peer="plain confluent-kafka consumer + json.loads + pyarrow (no lake)",
            ratio=peer_s / ours_s,
            detail=f"{records:,} envelopes, {points:,} points; ours {ours_s:.2f} s, peer {peer_s:.2f} s",
        )
    ]


def run(scale: float) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-connectors-") as tmp:
        root = Path(tmp)
        return _influx(root, scale) + _kafka(root, scale)
