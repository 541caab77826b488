"""Online latency: replayed points → blended forecast stored, at 10,000 points/s.

The replay connector (:class:`~sparkhu.connectors.replay.ReplaySource`, pumped by
:func:`~sparkhu.connectors.runner.pump`) replays 100 minutely series at 6,000× (10,000
points/s): one tick of 1,000 points every 100 ms published to a SQLite bus (Arrow messages,
one per partition). An :class:`~sparkhu.online.learner.OnlinePredictor` (SES, window 60, horizon
20, blending in the SQLite prediction store) runs in another thread. Latency per message is
the time from the bus timestamp of the message to the commit of the transaction that stored
its blended forecasts; the model warm-up (first fits) is included.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import Result
from sparkhu.connectors.replay import ReplaySource
from sparkhu.connectors.runner import pump
from sparkhu.online.learner import OnlinePredictor
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.sqlite import SqliteBus

SERIES = 100
TICK_S = 0.1
POINTS_PER_TICK = 10  # per series: one point every 10 ms
TARGET_RATE = SERIES * POINTS_PER_TICK / TICK_S
TOPIC = "bench.points"
STEP_US = 60_000_000  # the replayed data is minutely


def _history(ticks: int) -> pa.Table:
    """Minutely points of SERIES meters, enough for ``ticks`` replay ticks."""
    rng = np.random.default_rng(0)
    per_series = ticks * POINTS_PER_TICK
    ids = np.repeat([f"bench/house/m{i:03d}" for i in range(SERIES)], per_series)
    ts = np.tile(np.arange(per_series, dtype="int64") * STEP_US, SERIES)
    values = np.repeat(rng.uniform(100, 1000, SERIES), per_series) + rng.normal(0, 10, ids.size)
    return points(ids.tolist(), ts, values)


def _replay(bus: SqliteBus, catalog: Catalog, ticks: int, stop: threading.Event, sent: list[int]) -> None:
    # The real path: the replay connector (time-axis translator) pumped onto the bus. One data
    # minute per point and POINTS_PER_TICK points per series per tick: speed = data s per wall s.
    speed = POINTS_PER_TICK * STEP_US / 1e6 / TICK_S
    source = ReplaySource("bench-replay", _history(ticks), shift="start_now", speed=speed, tick_s=TICK_S)
    stats = pump(source, bus, TOPIC, catalog, stop=stop)
    sent[0] = stats.points


def run(scale: float) -> list[Result]:
    """Replay for ``20 s * scale`` and report the latency percentiles."""
    seconds = max(2.0, 20.0 * scale)
    ticks = int(seconds / TICK_S)
    with tempfile.TemporaryDirectory(prefix="sparkhu-online-") as tmp:
        home = Path(tmp)
        bus = SqliteBus(f"sqlite:///{home / 'bus.db'}", default_partitions=4)
        bus.create_topic(TOPIC)
        catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
        store = PredictionStore(catalog.engine)
        predictor = OnlinePredictor(bus, TOPIC, store, window=60, horizon=20, step_s=60)
        stop_predictor, stop_producer = threading.Event(), threading.Event()
        sent = [0]
        worker = threading.Thread(target=predictor.run, args=(stop_predictor, 0.02), name="online")
        producer = threading.Thread(
            target=_replay, args=(bus, catalog, ticks, stop_producer, sent), name="replay"
        )
        started = time.monotonic()
        worker.start()
        producer.start()
        producer.join()
        produced_s = time.monotonic() - started
        deadline = time.monotonic() + 10.0
        while predictor.stats().points < sent[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_predictor.set()
        worker.join()
        stats = predictor.stats()
        catalog.close()
        bus.close()
    lat = predictor.latencies_ms()
    rate = sent[0] / produced_s
    detail = (
        f"{SERIES} series, {rate:,.0f} pts/s for {produced_s:.1f} s; {stats.messages} msgs in "
        f"{stats.batches} polls, {stats.forecasts:,} forecasts; max {lat.max():,.0f} ms"
        if lat.size
        else "no message was forecast"
    )
    p50, p99 = stats.latency_p50_ms, stats.latency_p99_ms
    return [
        Result("online", "replay → blended forecast stored, p50", p50, "ms", "", None, detail),
        Result("online", "replay → blended forecast stored, p99", p99, "ms", "p99 <= 250 ms", p99 <= 250.0),
        Result(
            "online",
            "points consumed",
            stats.points / produced_s,
            "points/s",
            f"{TARGET_RATE:,.0f} (within 5%)",
            stats.points >= sent[0] and rate >= 0.95 * TARGET_RATE,
        ),
    ]
