"""The lake sink: bus → lake at least once, exactly once on read, bad messages quarantined.

The first test is an integration test (``configured_bus`` and the catalog follow the ``settings``
fixture: SQLite, or Kafka + PostgreSQL with ``--sparkhu-config=distributed``); the others drive
the SQLite bus's short sessions and its group offsets directly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.config import Settings
from sparkhu.connectors.lake_sink import LakeSink
from sparkhu.errors import ConnectorError, LakeError
from sparkhu.series import POINT_SCHEMA, points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.stream import Bus, open_bus
from sparkhu.stream.codecs import JsonDecoder, encode_arrow, encode_connect, publish_points
from sparkhu.stream.sqlite import SqliteBus

T0 = 1_609_426_800_000_000  # 2020-12-31T15:00:00Z in µs
TOPIC = "raw.meters"


def meters(n_series: int = 8, per_series: int = 3_000, *, seed: int = 1) -> pa.Table:
    """Minutely points of ``n_series`` meters over about two days, interleaved in time."""
    ids = [f"ampds2/electricity/M{i:02d}.P" for i in range(n_series)] * per_series
    ts = np.repeat(np.arange(per_series, dtype="int64") * 60_000_000 + T0, n_series)
    values = np.random.default_rng(seed).normal(100, 10, len(ids)).round(2)
    return points(ids, ts, values)


def rows(table: pa.Table) -> list[tuple]:
    return sorted(zip(*(table.column(n).to_pylist() for n in POINT_SCHEMA.names), strict=True))


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[SqliteBus]:
    with SqliteBus(f"sqlite:///{tmp_path / 'bus.db'}", default_partitions=4, session_timeout=0.5) as opened:
        yield opened


@pytest.fixture
def configured_bus(settings: Settings) -> Iterator[Bus]:
    """The bus of this session's configuration (SQLite or Kafka)."""
    with open_bus(
        settings.bus.uri, default_partitions=4, client=settings.bus.client, consumer=settings.bus.consumer
    ) as opened:
        yield opened


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def drain(sink: LakeSink, quiet_s: float = 0.0) -> int:
    """Run rounds until three in a row found nothing and ``quiet_s`` passed without any (Kafka)."""
    total = idle = 0
    idle_since = time.monotonic()
    while idle < 3 or time.monotonic() - idle_since < quiet_s:
        written = sink.run_once(timeout=0.05)
        total += written
        idle = 0 if written else idle + 1
        if written:
            idle_since = time.monotonic()
    return total


def lag(bus: SqliteBus, group: str = "lake-sink") -> int:
    committed = bus.group_offsets(group, TOPIC)
    return sum(end - committed.get(p, 0) for p, end in bus.end_offsets(TOPIC).items())


def committed_lag(bus: Bus, group: str = "lake-sink") -> int:
    """Messages of ``TOPIC`` that ``group`` has not committed (any bus)."""
    with bus.consumer(group, [TOPIC]) as consumer:
        committed = {partition: offset for (_, partition), offset in consumer.committed().items()}
    return sum(end - committed.get(p, 0) for p, end in bus.end_offsets(TOPIC).items())


@pytest.mark.integration
def test_the_sink_drains_the_topic_into_the_lake_and_the_catalog(
    configured_bus: Bus, lake: Lake, settings: Settings
) -> None:
    bus = configured_bus
    table = meters()
    publish_points(bus, TOPIC, table, max_rows=2_000)
    catalog = Catalog(settings.storage.catalog)
    try:
        with LakeSink(bus, lake, TOPIC, dataset="meters", catalog=catalog, max_points=10_000) as sink:
            quiet_s = 3.0 if bus.uri.startswith("kafka://") else 0.0
            assert drain(sink, quiet_s) == table.num_rows == sink.points_written
            info = catalog.series("ampds2/electricity/M03.P")
        assert info.count == 3_000 and info.first_ts is not None and info.first_ts.timestamp() * 1e6 == T0
    finally:
        catalog.close()
    assert rows(lake.read("raw", "meters")) == rows(table)
    assert committed_lag(bus) == 0
    assert {p.key for p in lake.partitions("raw", "meters")} == {"date=2020-12-31", "date=2021-01-01",
                                                                 "date=2021-01-02"}  # fmt: skip


def test_chunks_gather_several_messages_up_to_max_points(bus: SqliteBus, lake: Lake) -> None:
    bus.create_topic(TOPIC, 1)
    publish_points(bus, TOPIC, meters(n_series=1, per_series=10_000), max_rows=1_000)
    with LakeSink(bus, lake, TOPIC, dataset="meters", max_points=2_500) as sink:
        chunk = sink.fetch(timeout=1)
        assert 2_500 <= chunk.points.num_rows <= 3_500 and len(chunk.messages) >= 3
        sink.store(chunk)
        sink.commit(chunk)
        assert drain(sink) == 10_000 - chunk.points.num_rows
    assert lake.read("raw", "meters").num_rows == 10_000


def test_a_chunk_and_its_quarantine_are_recorded_in_one_catalog_call(bus: SqliteBus, tmp_path: Path) -> None:
    told: list[list[tuple[str, str]]] = []
    lake = Lake(
        str(tmp_path / "lake"), on_write=lambda writes: told.append([(w.zone, w.key) for w in writes])
    )
    bus.create_topic(TOPIC, 1)
    publish_points(bus, TOPIC, meters(n_series=2, per_series=2_000), max_rows=1_000)  # three days
    bus.produce(TOPIC, [(b"k", b"not a batch")])
    with LakeSink(bus, lake, TOPIC, dataset="meters", max_points=100_000) as sink:
        sink.run_once(timeout=1)
    assert len(told) == 1
    assert sorted(zone for zone, _ in told[0]) == ["quarantine", "raw", "raw", "raw"]


def test_a_crash_between_write_and_commit_redelivers_and_reads_stay_exact(bus: SqliteBus, lake: Lake) -> None:
    table = meters()
    publish_points(bus, TOPIC, table, max_rows=2_000)
    crashed = LakeSink(bus, lake, TOPIC, dataset="meters", max_points=10_000)
    first = crashed.fetch(timeout=1)
    crashed.store(first)  # written, then the process "dies": no commit, no more heartbeats
    second = crashed.fetch(timeout=0)
    crashed.store(second)
    assert first.points.num_rows and second.points.num_rows
    time.sleep(0.6)  # the 0.5 s session expires
    with LakeSink(bus, lake, TOPIC, dataset="meters", max_points=10_000) as survivor:
        assert drain(survivor) == table.num_rows  # everything again: nothing had been committed
    assert rows(lake.read("raw", "meters")) == rows(table)
    assert lake.read("raw", "meters", dedup=False).num_rows == table.num_rows + first.points.num_rows + (
        second.points.num_rows
    )
    assert lag(bus) == 0


def run_sink_in_child(bus_uri: str, lake_root: str, started: multiprocessing.Event) -> None:
    """Child process: drain three chunks, then write a fourth without committing it and wait to be killed.

    Deterministic on a loaded machine: the kill always lands between a durable write and its commit.
    """
    bus = SqliteBus(bus_uri, session_timeout=0.5)
    sink = LakeSink(bus, Lake(lake_root), TOPIC, dataset="meters", max_points=4_000, max_wait=0.05)
    for _ in range(3):
        sink.run_once(timeout=5)
    sink.store(sink.fetch(timeout=5))
    started.set()
    threading.Event().wait()


def test_a_sink_killed_mid_stream_loses_nothing_and_duplicates_nothing(
    bus: SqliteBus, lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    table = meters(n_series=8, per_series=10_000)
    publish_points(bus, TOPIC, table, max_rows=2_000)
    monkeypatch.syspath_prepend(str(pytestconfig.rootpath))
    spawn = multiprocessing.get_context("spawn")
    started = spawn.Event()
    child = spawn.Process(target=run_sink_in_child, args=(bus.uri, lake.root, started))
    child.start()
    try:
        assert started.wait(timeout=60)
        # three committed chunks and one written but not committed
        assert lake.read("raw", "meters", dedup=False).num_rows >= 16_000
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL
    assert 0 < lag(bus) < sum(bus.end_offsets(TOPIC).values())  # killed mid-stream
    time.sleep(0.6)  # its session expires
    with LakeSink(bus, lake, TOPIC, dataset="meters", max_points=50_000) as sink:
        drain(sink)
    assert lag(bus) == 0
    assert rows(lake.read("raw", "meters")) == rows(table)


def test_bad_messages_are_quarantined_and_the_good_ones_go_on(bus: SqliteBus, lake: Lake) -> None:
    bus.create_topic(TOPIC, 1)
    good = meters(n_series=2, per_series=10)
    mixed = points(["a/b/c", "not an id", "a/b/c"], [T0, T0, T0 + 60_000_000], [1.0, 2.0, 3.0])
    bus.produce(
        TOPIC,
        [
            (None, encode_arrow(good)),
            (None, b"\xff\xff\xff\xff garbage"),
            (None, encode_arrow(pa.table({"x": [1, 2]}))),
            (None, b'{"series_id": "a/b/c", "ts": 1, "value": 1}'),
            (None, encode_arrow(mixed)),
        ],
    )
    with LakeSink(bus, lake, TOPIC, dataset="meters") as sink:
        assert sink.run_once(timeout=1) == good.num_rows + 2
        assert sink.records_quarantined == 4
    assert rows(lake.read("raw", "meters")) == rows(
        pa.concat_tables([good, mixed.filter(pa.array([True, False, True]))])
    )
    bad = sorted(lake.read_quarantine("meters").to_pylist(), key=lambda r: r["source"])
    assert [r["source"] for r in bad] == [f"{TOPIC}/0/{i}" for i in (1, 2, 3, 4)]
    assert "not an Arrow IPC stream (" in bad[0]["reason"]
    assert "not a points table" in bad[1]["reason"]
    assert "give the sink a json_decoder" in bad[2]["reason"] and bad[2]["raw"].startswith('{"series_id"')
    assert (  # one row per bad point, naming its row in the message and holding the point
        bad[3]["field"] == "series_id"
        and bad[3]["location"] == "offset 4 row 2"
        and "source/measurement/field" in bad[3]["reason"]
        and '"not an id"' in bad[3]["raw"]
    )
    assert lag(bus) == 0


def test_a_json_topic_is_decoded_by_the_configured_decoder(bus: SqliteBus, lake: Lake) -> None:
    bus.create_topic(TOPIC, 2)
    records = [
        {
            "time": 1609426800000 + i * 60_000,
            "measurement": "electricity",
            "zone": zone,
            "V": 120.0 + i,
            "P": 30.0,
        }
        for i in range(5)
        for zone in ("FGE", "WHE")
    ]
    envelopes = encode_connect(points("ampds2/electricity/X.P", [T0], [7.0]))
    values = [json.dumps(r).encode() for r in records] + envelopes + [b"{broken", encode_arrow(meters(1, 3))]
    bus.produce(TOPIC, [(r["zone"].encode() if isinstance(r, dict) else None, v)
                        for r, v in zip([*records, None, None, None], values, strict=True)])  # fmt: skip
    decoder = JsonDecoder(source="ampds2", tag="zone")
    with LakeSink(bus, lake, TOPIC, dataset="meters", json_decoder=decoder) as sink:
        assert drain(sink) == 20 + 1 + 3
    stored = lake.read("raw", "meters")
    assert sorted(set(stored.column("series_id").to_pylist())) == [
        "ampds2/electricity/FGE.P",
        "ampds2/electricity/FGE.V",
        "ampds2/electricity/M00.P",
        "ampds2/electricity/WHE.P",
        "ampds2/electricity/WHE.V",
        "ampds2/electricity/X.P",
    ]
    [bad] = lake.read_quarantine("meters").to_pylist()
    assert bad["raw"] == "{broken" and bad["reason"].startswith("not JSON")


def test_no_infinite_value_or_out_of_range_time_reaches_the_lake(bus: SqliteBus, lake: Lake) -> None:
    """Issue 10, items 1-3: one rule for JSON and Arrow; before, these failed every write (and the
    gateway answered a plain-text 500 for the infinite values that got in)."""
    bus.create_topic(TOPIC, 1)
    ms = T0 // 1000
    bus.produce(
        TOPIC,
        [
            (None, f'{{"series_id": "a/b/c", "ts": {ms}, "value": Infinity}}'.encode()),
            (None, f'{{"series_id": "a/b/c", "ts": {ms + 60_000}, "value": 1e400}}'.encode()),
            (None, f'{{"series_id": "a/b/c", "ts": {ms + 120_000}, "value": NaN}}'.encode()),
            (None, b'{"series_id": "a/b/c", "ts": 253370764800000, "value": 1}'),  # 9999-01-01
            (None, f'{{"series_id": "a/b/c", "ts": {ms + 180_000}, "value": 4}}'.encode()),
            (None, encode_arrow(points("a/b/d", [T0, 253_370_764_800_000_000], [5.0, 6.0]))),
            (None, encode_arrow(points("a/b/d", [T0 + 60_000_000], [float("-inf")]))),
        ],
    )
    dead: list[int] = []
    with LakeSink(
        bus, lake, TOPIC, dataset="meters", json_decoder=JsonDecoder(),
        dead_letter=lambda messages: dead.extend(m.offset for m in messages),
    ) as sink:  # fmt: skip
        assert drain(sink) == 2
    assert lake.read("raw", "meters").column("value").to_pylist() == [4.0, 5.0]
    assert dead == [0, 1, 3, 5, 6]  # NaN (offset 2) is a missing value: nothing to dead-letter
    assert lag(bus) == 0  # committed past every bad record: a restart does not meet them again
    reasons = sorted(lake.read_quarantine("meters").column("reason").to_pylist())
    assert len(reasons) == 5 and all("not a finite number" in r or "years 1 to 9998" in r for r in reasons)


def test_run_stops_when_the_event_is_set(bus: SqliteBus, lake: Lake) -> None:
    sink = LakeSink(bus, lake, TOPIC, dataset="meters")
    stop = threading.Event()
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(sink.run(stop, poll_timeout=0.05)))
    worker.start()
    publish_points(bus, TOPIC, meters(n_series=2, per_series=50))
    deadline = time.monotonic() + 10
    while sink.points_written < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    worker.join(timeout=10)
    sink.close()
    assert result == [100] and not worker.is_alive()


def test_a_failing_write_commits_nothing_and_is_retried(bus: SqliteBus, lake: Lake) -> None:
    publish_points(bus, TOPIC, meters(n_series=2, per_series=10))
    with LakeSink(bus, lake, TOPIC, dataset="meters", zone="nowhere") as sink:
        for _ in range(2):  # the second round reads the same messages again
            with pytest.raises(LakeError, match="nowhere"):
                sink.run_once(timeout=1)
    assert lag(bus) == sum(bus.end_offsets(TOPIC).values()) > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "meters", "max_points": 0}, "max_points must be an integer >= 1"),
        ({"dataset": "meters", "max_wait": -1}, "max_wait must be >= 0"),
        ({"dataset": ""}, "dataset must be a non-empty name"),
    ],
)
def test_bad_settings_are_connector_errors(bus: SqliteBus, lake: Lake, kwargs: dict, match: str) -> None:
    with pytest.raises(ConnectorError, match=match):
        LakeSink(bus, lake, TOPIC, **kwargs)
