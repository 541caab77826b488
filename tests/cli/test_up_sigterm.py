"""`sparkhu up` stops gracefully on SIGTERM: within its bound, exit status 0, nothing half-done.

The real process, bus, catalog and lake. After the stop, the consumer groups' committed offsets
must be exactly what is stored: the lake holds the points of every message below the lake
sink's offsets and none after them (so a restart neither loses nor doubles a point), and the
online predictor's checkpoint is at its committed offsets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sparkhu.config import Settings
from sparkhu.demo.generator import generate
from sparkhu.online.learner import checkpoint_offsets
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream import open_bus
from sparkhu.stream.codecs import decode_points

pytestmark = pytest.mark.slow

DATASET = "ampds2_electricity"
STOP_TIMEOUT_S = 6.0


def _keys(table: pa.Table) -> set[tuple[str, int]]:
    ids = table.column("series_id").cast(pa.string()).to_pylist()
    return set(zip(ids, table.column("ts").cast(pa.int64()).to_pylist(), strict=True))


def test_sigterm_stops_up_gracefully_with_offsets_equal_to_what_is_stored(tmp_path: Path):
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    live = generate(days=3 / 24, meters=10, seed=4, start=start, defects=False).points
    schema = pa.schema(
        [("series_id", pa.string()), ("ts", live.schema.field("ts").type), ("value", pa.float64())]
    )
    pq.write_table(live.cast(schema), tmp_path / "live.parquet")
    home = tmp_path / "home"
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        f'home = "{home}"\nstop_timeout_s = {STOP_TIMEOUT_S}\n[gateway]\nport = 0\n'
        "[[sources]]\n"
        f'name = "live"\nkind = "replay"\npath = "{tmp_path / "live.parquet"}"\nshift = "0s"\nspeed = 300\n'
        "future = true\n"
        'source = "ampds2"\nmeasurement = "electricity"\n'
    )
    settings = Settings.load(toml_path=toml, env={})
    topic = f"{settings.bus.topic_prefix}ampds2.electricity"
    exe = str(Path(sys.executable).with_name("sparkhu"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKHU_")}
    with open_bus(settings.bus.uri) as bus:
        bus.create_topic(topic)
        log = tmp_path / "up.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([exe, "--config", str(toml), "up"], stdout=out, stderr=out, env=env)
        deadline = time.monotonic() + 60
        while (
            sum(bus.end_offsets(topic).values()) < 20 and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        time.sleep(1.0)  # mid-stream: the sinks have batches in hand
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(STOP_TIMEOUT_S + 10)
        took = time.monotonic() - asked
        output = log.read_text()
        assert code == 0, output
        assert took < STOP_TIMEOUT_S + 3, (took, output)
        assert "SIGTERM: stopping" in output and "Traceback" not in output

        ends = bus.end_offsets(topic)
        with bus.consumer("lake-sink", [topic]) as sink:
            sink_offsets = {p: o for (_, p), o in sink.committed().items()}
        with bus.consumer("online", [topic]) as online:
            online_offsets = {p: o for (_, p), o in online.committed().items()}
        with bus.consumer("audit", [topic]) as audit:
            messages = []
            while batch := audit.poll(max_messages=10_000, timeout=0.5):
                messages.extend(batch)
    assert len(messages) == sum(ends.values()) and sum(sink_offsets.values()) > 0
    below = [m for m in messages if m.offset < sink_offsets.get(m.partition, 0)]
    stored = pa.concat_tables([decode_points(m.value) for m in below])

    lake = Lake(settings.storage.lake)
    in_lake = lake.read("raw", DATASET)
    assert _keys(in_lake) == _keys(stored)  # none lost, none written past the committed offsets
    assert lake.read("raw", DATASET, dedup=False).num_rows == in_lake.num_rows  # nor twice
    with Catalog(settings.storage.catalog) as catalog:
        checkpointed = checkpoint_offsets(PredictionStore(catalog.engine), "online", topic)
        counts = {info.series_id: info.count for info in catalog.list_series()}
    assert checkpointed == {p: o for p, o in online_offsets.items() if o}
    per_series = in_lake.group_by("series_id").aggregate([("ts", "count")])
    assert counts == dict(
        zip(
            per_series["series_id"].cast(pa.string()).to_pylist(),
            per_series["ts_count"].to_pylist(),
            strict=True,
        )
    )
    assert pc.sum(pc.is_in(live["ts"], in_lake["ts"])).as_py() < live.num_rows  # stopped mid-stream
