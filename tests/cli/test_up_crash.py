"""`sparkhu up` killed with SIGKILL at random points while it streams: after restarts, the
prediction store is that of an uninterrupted run over the same messages.

A replay source streams two hours of ten meters (10 data minutes per second) after two hours of
history already in the lake. The platform is killed (kill -9) several times at random moments
while the bus grows, restarted each time, and finally left to drain. An online predictor of
another consumer group then reads the very same bus without interruption into a fresh
prediction store (its lake holding only the history): both stores must hold the same raw
forecasts and the same blended values. The real SQLite bus, catalog and lake; no fakes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.connectors.landing import land
from sparkhu.demo.generator import generate
from sparkhu.online.learner import OnlinePredictor
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream import open_bus

pytestmark = pytest.mark.slow

DATASET = "ampds2_electricity"
KILLS = 3


def _live_schema(table: pa.Table) -> pa.Schema:
    return pa.schema(
        [("series_id", pa.string()), ("ts", table.schema.field("ts").type), ("value", pa.float64())]
    )


def _start(exe: str, toml: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([exe, "--config", str(toml), "up"], stdout=out, stderr=out, env=env)


def test_kill_9_at_random_points_leaves_the_forecasts_of_an_uninterrupted_run(tmp_path: Path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    # two days ahead (hence future = true): no finished day in the lake, so the daily pipeline
    # has nothing to catch up
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    data = generate(days=4 / 24, meters=10, seed=11, start=start, defects=False).points
    cut = pa.scalar(start + timedelta(hours=2), data.schema.field("ts").type)
    history = data.filter(pc.less(data["ts"], cut))
    live = data.filter(pc.greater_equal(data["ts"], cut))
    pq.write_table(live.cast(_live_schema(live)), tmp_path / "live.parquet")
    home = tmp_path / "home"
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        f'home = "{home}"\n[gateway]\nport = 0\n'
        "[[sources]]\n"
        f'name = "live"\nkind = "replay"\npath = "{tmp_path / "live.parquet"}"\nshift = "0s"\nspeed = 600\n'
        "future = true\n"
        'source = "ampds2"\nmeasurement = "electricity"\n'
    )
    settings = Settings.load(toml_path=toml, env={})
    with Runtime(settings) as runtime:
        land(runtime.lake, runtime.catalog, "raw", DATASET, history)  # as `sparkhu ingest` would
        topic = runtime.topic("ampds2", "electricity")
        bus_uri = runtime.bus.uri
    reference_lake = Lake(str(tmp_path / "reference-lake"))
    reference_lake.write("raw", DATASET, history)

    exe = str(Path(sys.executable).with_name("sparkhu"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKHU_")}
    log = tmp_path / "up.log"
    watch = open_bus(bus_uri)
    watch.create_topic(topic)

    def published() -> int:
        return sum(watch.end_offsets(topic).values())

    kills = 0
    for _ in range(KILLS):
        before = published()
        proc = _start(exe, toml, env, log)
        deadline = time.monotonic() + 60
        while published() <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        time.sleep(rng.uniform(0.0, 2.0))  # somewhere while it streams
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    assert kills == KILLS

    proc = _start(exe, toml, env, log)  # the last run drains the rest
    series = sorted(pc.unique(data["series_id"].cast(pa.string())).to_pylist())
    last = live.group_by("series_id").aggregate([("ts", "max")])
    last_ts = dict(
        zip(last["series_id"].cast(pa.string()).to_pylist(), last["ts_max"].to_pylist(), strict=True)
    )
    try:
        deadline = time.monotonic() + 90
        with Catalog(settings.storage.catalog) as catalog:
            store = PredictionStore(catalog.engine)
            # drained: every series forecast from its last point (the last point is an origin)
            while proc.poll() is None and time.monotonic() < deadline:
                lake_rows = Lake(settings.storage.lake).read("raw", DATASET).num_rows
                if lake_rows == data.num_rows and all(
                    store.latest_origin(sid) == last_ts[sid] for sid in series
                ):
                    break
                time.sleep(0.5)
            else:
                pytest.fail(f"did not drain (seed {seed}):\n{log.read_text()[-3000:]}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        watch.close()

    with (
        open_bus(bus_uri) as bus,
        Catalog(settings.storage.catalog) as crashed,
        Catalog(f"sqlite:///{tmp_path / 'reference.db'}") as ref,
    ):
        forecast = settings.forecast
        reference = OnlinePredictor(
            bus,
            topic,
            PredictionStore(ref.engine),
            group="reference",
            model=forecast.model,
            window=forecast.window,
            horizon=forecast.horizon,
            alpha=forecast.alpha,
            lake=reference_lake,
            dataset=DATASET,
        )
        while reference.run_once(timeout=0.2):
            pass
        reference.close()
        tested_store, reference_store = PredictionStore(crashed.engine), PredictionStore(ref.engine)
        missing = 0
        for sid in series:
            got = tested_store.blended(sid).drop_columns(["updated_at"])
            want = reference_store.blended(sid).drop_columns(["updated_at"])
            got_targets = got.column("target_ts").cast("int64").to_pylist()
            want_targets = want.column("target_ts").cast("int64").to_pylist()
            missing += len(set(want_targets) - set(got_targets))
            assert got_targets == want_targets, (sid, seed)
            assert got.column("updates").to_pylist() == want.column("updates").to_pylist(), (sid, seed)
            for name in ("value", "lower", "upper"):
                a = got.column(name).to_numpy(zero_copy_only=False)
                b = want.column(name).to_numpy(zero_copy_only=False)
                assert np.allclose(a, b, rtol=1e-9, equal_nan=True), (sid, name, seed)
            raw = tested_store.raw(sid).select(["origin_ts", "target_ts", "value"])
            assert raw.equals(reference_store.raw(sid).select(["origin_ts", "target_ts", "value"])), (
                sid,
                seed,
            )
        assert missing == 0
        # the catalog counted every point once, re-deliveries after each kill notwithstanding
        counts = {info.series_id: info.count for info in crashed.list_series()}
        assert counts == dict.fromkeys(series, data.num_rows // len(series)), seed
        assert len(want_targets) > 100  # the reference forecast the whole stream
