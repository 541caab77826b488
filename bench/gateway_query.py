"""Gateway: GraphQL ``predictions`` latency for 1,440 blended points; REST points throughput.

A real app over a real SQLite catalog, lake and prediction store in a temporary directory,
called in-process through httpx's ASGI transport (no sockets: this measures the gateway,
storage reads and serialisation, not the loopback network). Peer: the same reads through a bare
Starlette app over the same store answering plain JSON (``bench.gateway_load``'s), same client,
run ours / bare / bare / ours; ratio = the bare app's latency over ours (> 1: ours faster).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from bench import Result
from sparkhu.config import GatewaySettings
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import FORECAST_SCHEMA, PredictionStore

SID = "ampds2/electricity/WHE.P"
DATASET = "ampds2_electricity"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
MINUTE_US = 60_000_000
BLENDED_POINTS = 1440
HORIZON = 20
PEER = "bare Starlette JSON endpoint over the same store"

QUERY = """query($id: String!, $start: DateTime!) {
  predictions(seriesId: $id, start: $start) { ts value lower upper updates } }"""
COLUMNS = """query($id: String!, $start: DateTime!) {
  predictionColumns(seriesId: $id, start: $start) { ts value lower upper updates } }"""


def _seed(root: Path, days: int) -> GatewayServices:
    catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
    lake = Lake((root / "lake").as_uri())
    store = PredictionStore(catalog.engine)
    catalog.upsert_series(SeriesInfo.of(SID, unit="W", period_s=60.0))
    n = days * 1440
    t0 = int(T0.timestamp() * 1_000_000)
    idx = np.arange(n)
    actuals = points(SID, t0 + idx * MINUTE_US, 1000 + 300 * np.sin(idx / 240.0))
    lake.write("raw", DATASET, actuals)
    catalog.update_series_stats(actuals)
    # forecasts every minute over the last day, 20 steps each: 1,440 blended targets, 20 updates each
    origins = t0 + (n - BLENDED_POINTS - HORIZON + np.arange(BLENDED_POINTS + HORIZON - 1)) * MINUTE_US
    origin = np.repeat(origins, HORIZON)
    step = np.tile(np.arange(1, HORIZON + 1, dtype="int32"), len(origins))
    target = origin + step.astype("int64") * MINUTE_US
    keep = (target >= t0 + (n - BLENDED_POINTS) * MINUTE_US) & (target < t0 + n * MINUTE_US)
    value = 1000 + 300 * np.sin((target - t0) / MINUTE_US / 240.0) + step
    ts = FORECAST_SCHEMA.field("origin_ts").type
    table = pa.table(
        {
            "series_id": pa.array([SID] * int(keep.sum())),
            "origin_ts": pa.array(origin[keep]).cast(ts),
            "target_ts": pa.array(target[keep]).cast(ts),
            "step": pa.array(step[keep]),
            "value": value[keep],
            "lower": value[keep] - 50,
            "upper": value[keep] + 50,
            "model": pa.array(["ses"] * int(keep.sum())),
        }
    )
    store.write(table)
    return GatewayServices(
        lake=lake, catalog=catalog, predictions=store, settings=GatewaySettings(), actuals=("raw", DATASET)
    )


async def _latencies(client: httpx.AsyncClient, query: str, start: str, rounds: int) -> list[float]:
    body = {"query": query, "variables": {"id": SID, "start": start}}
    for _ in range(3):
        answer = (await client.post("/graphql", json=body)).json()
        if "errors" in answer:
            raise RuntimeError(f"benchmark query failed: {answer['errors']}")
    latencies = []
    for _ in range(rounds):
        began = time.perf_counter()
        await client.post("/graphql", json=body)
        latencies.append((time.perf_counter() - began) * 1000)
    return sorted(latencies)


async def _peer(root: Path, days: int, rounds: int) -> dict[str, Any]:
    """The same reads through a bare Starlette app over the same store (plain JSON), same client."""
    from bench.gateway_load import _peer_app

    app = _peer_app(root)
    start_last_day = (T0 + timedelta(days=days - 1)).isoformat()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        params = {"id": SID, "start": start_last_day}
        for _ in range(3):
            (await client.get("/predictions", params=params)).raise_for_status()
        latencies = []
        for _ in range(rounds):
            began = time.perf_counter()
            await client.get("/predictions", params=params)
            latencies.append((time.perf_counter() - began) * 1000)
        requests = max(10, rounds // 2)
        began = time.perf_counter()
        total = 0
        for i in range(requests):
            day = T0 + timedelta(days=i % days)
            query = {"id": SID, "start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
            total += len((await client.get("/points", params=query)).json()["ts"])
        elapsed = time.perf_counter() - began
    return {"latencies": sorted(latencies), "points_per_s": total / elapsed}


async def _measure(services: GatewayServices, days: int, rounds: int) -> dict[str, Any]:
    app = create_app(services)
    start_last_day = (T0 + timedelta(days=days - 1)).isoformat()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        check = {"query": QUERY, "variables": {"id": SID, "start": start_last_day}}
        got = len((await client.post("/graphql", json=check)).json()["data"]["predictions"])
        objects = await _latencies(client, QUERY, start_last_day, rounds)
        columns = await _latencies(client, COLUMNS, start_last_day, rounds)
        # REST: one day of actuals per request
        url = f"/api/series/{SID}/points"
        requests = max(10, rounds // 2)
        began = time.perf_counter()
        total = 0
        for i in range(requests):
            day = T0 + timedelta(days=i % days)
            params = {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
            total += (await client.get(url, params=params)).json()["count"]
        elapsed = time.perf_counter() - began
    return {
        "objects": objects,
        "columns": columns,
        "points_per_s": total / elapsed,
        "requests_per_s": requests / elapsed,
        "got": got,
    }


def _p(latencies: list[float], q: float) -> float:
    return (
        statistics.median(latencies)
        if q == 0.5
        else latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    )


def run(scale: float) -> list[Result]:
    days = max(2, round(7 * scale))
    rounds = max(20, round(200 * scale))
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-gateway-") as tmp:
        services = _seed(Path(tmp), days)
        try:  # A/B/B/A: ours, the bare app twice, ours; medians of each side's figures
            runs = [asyncio.run(_measure(services, days, rounds))]
            peers = [asyncio.run(_peer(Path(tmp), days, rounds)) for _ in range(2)]
            runs.append(asyncio.run(_measure(services, days, rounds)))
        finally:
            services.catalog.close()
    m = (
        runs[0]
        | {key: sorted(runs[0][key] + runs[1][key]) for key in ("objects", "columns")}
        | {"points_per_s": statistics.median([r["points_per_s"] for r in runs])}
    )
    peer_latencies = sorted(peers[0]["latencies"] + peers[1]["latencies"])
    peer_points = statistics.median([p["points_per_s"] for p in peers])
    peer_p50 = _p(peer_latencies, 0.5)
    detail = f"{m['got']} blended points, {rounds} queries, in-process ASGI"
    points_per_s, requests_per_s = m["points_per_s"], m["requests_per_s"]
    results = []
    for name, key in (("predictions", "objects"), ("predictionColumns", "columns")):
        p50, p99 = _p(m[key], 0.5), _p(m[key], 0.99)
        peer_p = _p(peer_latencies, 0.99)
        results += [
            Result("gateway", f"graphql {name} p50", p50, "ms", "<= 100", p50 <= 100,
                   f"{detail}; bare app p50 {peer_p50:.1f} ms", peer=PEER, ratio=peer_p50 / p50),
            Result("gateway", f"graphql {name} p99", p99, "ms", "<= 250", p99 <= 250,
                   f"{detail}; bare app p99 {peer_p:.1f} ms", peer=PEER, ratio=peer_p / p99),
        ]  # fmt: skip
    return [
        *results,
        Result(
            "gateway",
            "rest points throughput",
            points_per_s,
            "points/s",
            ">= 100,000",
            points_per_s >= 100_000,
            f"1,440 points per request, {requests_per_s:,.0f} requests/s over {days} days; "
            f"bare app {peer_points:,.0f} points/s",
            peer=PEER,
            ratio=points_per_s / peer_points,
        ),
    ]
