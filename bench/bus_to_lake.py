"""SQLite bus → lake sink: publish 5M x scale points as Arrow batches of 50k, time the sink draining them.

Two figures: the publish rate (split by partition, zstd Arrow IPC, one durable produce) and
the sink rate (poll, decode, one lake write per 500k points, commit), both in points/s, each
beside the plain way on the same bus: Arrow IPC streams produced as they are, and a bare consumer
reading them with pyarrow and writing date partitions with ``write_to_dataset`` (A/B/B/A).
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import Result, interleaved
from sparkhu.connectors.lake_sink import LakeSink
from sparkhu.series import POINT_SCHEMA, TS_TYPE
from sparkhu.storage.lake import Lake
from sparkhu.stream.codecs import publish_points
from sparkhu.stream.sqlite import SqliteBus

NAME = "SQLite bus → lake sink"
TARGET = 1_000_000.0


def make_points(total: int, n_series: int = 100, seed: int = 0) -> pa.Table:
    """``total`` minutely points of ``n_series`` meters, time-major (as a live source emits them).

    Values are random full-precision floats, which compress worst (real meter readings of
    fixed precision take about a third of the bytes on the bus).
    """
    per_series = max(1, total // n_series)
    ids = np.tile(np.arange(n_series, dtype="int32"), per_series)
    names = pa.array([f"bench/electricity/M{i:03d}.P" for i in range(n_series)])
    ts = np.repeat(np.arange(per_series, dtype="int64") * 60_000_000 + 1_600_000_000_000_000, n_series)
    values = np.random.default_rng(seed).normal(100.0, 15.0, len(ids))  # full-precision: the worst case
    series = pa.DictionaryArray.from_arrays(pa.array(ids), names)
    return pa.Table.from_arrays([series, pa.array(ts).cast(TS_TYPE), pa.array(values)], schema=POINT_SCHEMA)


def _peer_publish(bus: SqliteBus, topic: str, table: pa.Table, max_rows: int = 50_000) -> int:
    """The plain way: one zstd Arrow IPC stream per ``max_rows`` rows, produced in one call."""
    records = []
    for start in range(0, table.num_rows, max_rows):
        sink = pa.BufferOutputStream()
        part = table.slice(start, max_rows)
        with pa.ipc.new_stream(sink, part.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
            w.write_table(part)
        records.append((None, sink.getvalue().to_pybytes()))
    bus.produce(topic, records)
    return len(records)


def _peer_drain(bus: SqliteBus, topic: str, total: int, out: Path) -> int:
    """The plain way: a bare consumer, pyarrow IPC reads, ``write_to_dataset`` per 500k points, commit."""
    done, held, rows = 0, [], 0
    with bus.consumer("peer", [topic]) as consumer:
        while done < total:
            messages = consumer.poll(max_messages=100, timeout=1.0)
            if not messages:
                break
            for message in messages:
                held.append(pa.ipc.open_stream(message.value).read_all())
                rows += held[-1].num_rows
            if rows >= 500_000 or done + rows >= total:
                table = pa.concat_tables(held)
                table = table.append_column("date", table.column("ts").cast(pa.date32()))
                pq.write_to_dataset(table, out, partition_cols=["date"], compression="zstd")
                done, held, rows = done + table.num_rows, [], 0
            consumer.commit(messages)
    return done


def run(scale: float) -> list[Result]:
    total = max(100_000, int(5_000_000 * scale))
    table = make_points(total)
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-bus-") as tmp:
        root = Path(tmp)
        topics = iter(range(1_000))
        filled: list[str] = []
        with SqliteBus(f"sqlite:///{root / 'bus.db'}", default_partitions=4) as bus:
            messages = 0

            def ours_publish() -> None:
                nonlocal messages
                topic = f"raw.bench{next(topics)}"
                messages = publish_points(bus, topic, table, max_rows=50_000)
                filled.append(topic)

            def peer_publish() -> None:
                topic = f"peer.bench{next(topics)}"
                bus.create_topic(topic, 4)
                _peer_publish(bus, topic, table)

            publish_s, peer_publish_s = interleaved(ours_publish, peer_publish, rounds=1)
            with sqlite3.connect(root / "bus.db") as db:
                bus_bytes = db.execute(
                    "SELECT SUM(LENGTH(value)) FROM messages WHERE topic = ?", (filled[0],)
                ).fetchone()[0]
            for _ in range(2):  # four topics to drain: two each
                ours_publish()
            lake = Lake(str(root / "lake"))
            drained: list[int] = []

            def ours_drain() -> None:
                with LakeSink(bus, lake, filled.pop(0), dataset="bench", max_points=500_000) as sink:
                    while sink.points_written < table.num_rows:
                        if sink.run_once(timeout=1.0) == 0:
                            break
                    drained.append(sink.points_written)

            def peer_drain() -> None:
                _peer_drain(bus, filled.pop(), table.num_rows, root / f"peer{next(topics)}")

            sink_s, peer_sink_s = interleaved(ours_drain, peer_drain, rounds=1)
    per_point = bus_bytes / table.num_rows
    detail = f"{table.num_rows:,} points, {messages} messages, {per_point:.1f} B/point in messages"
    sink_rate = table.num_rows / sink_s
    written = min(drained)
    return [
        Result(
            NAME,
            "publish_points (split, encode, produce)",
            table.num_rows / publish_s,
            "points/s",
            detail=f"{detail}; peer {peer_publish_s:.2f} s",
            peer="Arrow IPC per 50k rows + produce",
            ratio=peer_publish_s / publish_s,
        ),
        Result(
            NAME,
            "sink drain (poll, decode, lake write, commit)",
            sink_rate,
            "points/s",
            target=">= 1,000,000",
            met=sink_rate >= TARGET and written == table.num_rows,
            detail=f"{written:,} points written in {sink_s:.2f} s; peer {peer_sink_s:.2f} s",
            peer="bare consumer + pyarrow write_to_dataset",
            ratio=peer_sink_s / sink_s,
        ),
    ]
