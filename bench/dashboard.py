"""Dashboard: time buckets, the runs grid, first paint and a zoom of the series explorer.

* **buckets**: one year of minutely points of one series (525,600) into 500 buckets
  (min/max/mean/last/count) through :func:`sparkhu.gateway.operator.point_buckets` (and through
  GraphQL, in-process), against the same DuckDB query written by hand over the lake's files.
  Target p95 ≤ 100 ms.
* **runs grid**: 1,000 series × 13 tasks × 30 days of run records (390,000 per-series records and
  390 task-day records) in a SQLite catalog, served as the grid (:func:`~sparkhu.gateway.operator.run_grid`);
  peer: the same grid built in Python from every record read through ``Catalog.runs`` (what the
  runs table did). Target p95 ≤ 1 s (Airflow 3.1's grid takes ~30 s for under 100 tasks).
* **explorer**: one week of minutely points of 12 series, the explorer opened on all 12 in
  Debian's Chromium (Playwright): first contentful paint and time to the drawn chart from the
  browser's performance timings, then a drag-zoom to the redrawn chart; peer: the same 12 series
  fetched as raw points (``pointColumns``, no buckets) and drawn in the same page.

``scale`` shrinks the data (the year, the series of the grid, the week).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np

from bench import Result, interleaved
from sparkhu.config import GatewaySettings
from sparkhu.gateway import operator as op
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices
from sparkhu.pipeline.records import RUN_KIND, SERIES_KIND
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, RunRecord, SeriesInfo
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore

DATASET = "bench_power"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MINUTE_US = 60_000_000
TASKS = 13
CHROMIUM = Path("/usr/bin/chromium")
CHART = "document.querySelector('[data-testid=explorer-chart]')"


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def _services(root: Path) -> GatewayServices:
    catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
    return GatewayServices(
        lake=Lake((root / "lake").as_uri()),
        catalog=catalog,
        predictions=PredictionStore(catalog.engine),
        settings=GatewaySettings(),
        actuals=("raw", DATASET),
    )


def _write_series(services: GatewayServices, series_id: str, minutes: int) -> None:
    services.catalog.upsert_series(SeriesInfo.of(series_id, unit="W", period_s=60.0, regular=True))
    t0 = int(T0.timestamp() * 1_000_000)
    idx = np.arange(minutes)
    table = points(series_id, t0 + idx * MINUTE_US, 1000 + 300 * np.sin(idx / 240.0) + (idx % 7))
    services.lake.write("raw", DATASET, table)
    services.catalog.update_series_stats(table)


# --- time buckets --------------------------------------------------------------------------


def bench_buckets(scale: float) -> list[Result]:
    minutes = max(int(365 * 1440 * scale), 5000)
    sid = "bench/power/P"
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(Path(tmp))
        _write_series(services, sid, minutes)
        every_s = -(-minutes * 60 // 500)  # 500 buckets
        bucket = f"{every_s}s"
        files = services.lake.files("raw", DATASET)
        hand = (
            "SELECT epoch_us(ts) // $every * $every AS b, min(value), max(value), avg(value), "
            "arg_max(value, ts), count(*) FROM read_parquet($files) WHERE series_id = $sid "
            "GROUP BY b ORDER BY b"
        )
        con = duckdb.connect()

        def ours() -> object:
            return op.point_buckets(services, sid, bucket)

        def peer() -> object:
            return con.sql(
                hand, params={"every": every_s * 1_000_000, "files": files, "sid": sid}
            ).to_arrow_table()

        assert ours().num_rows == peer().num_rows  # type: ignore[attr-defined]
        ours_times, peer_times = [], []
        for _ in range(15):
            a, b = interleaved(ours, peer, rounds=1)
            ours_times.append(a)
            peer_times.append(b)
        query = f'{{ pointBuckets(seriesId: "{sid}", bucket: "{bucket}") {{ ts min max mean last count }} }}'
        app = create_app(services)

        async def over_graphql() -> list[float]:
            took = []
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
                for _ in range(15):
                    started = time.perf_counter()
                    body = (await c.post("/graphql", json={"query": query})).json()
                    took.append(time.perf_counter() - started)
                    assert len(body["data"]["pointBuckets"]["ts"]) <= 501  # buckets are aligned on the epoch
            return took

        gql_times = asyncio.run(over_graphql())
        services.catalog.close()
    p95 = _p95(ours_times) * 1000
    return [
        Result(
            "dashboard",
            "buckets: 1 year minutely → 500 buckets, p95",
            p95,
            "ms",
            "<= 100",
            p95 <= 100,
            f"{minutes:,} points in {len(files)} daily files, bucket {bucket}, median "
            f"{statistics.median(ours_times) * 1000:.1f} ms, "
            f"peer median {statistics.median(peer_times) * 1000:.1f} ms",
            "hand-written DuckDB query",
            statistics.median(peer_times) / statistics.median(ours_times),
        ),
        Result(
            "dashboard",
            "buckets over GraphQL (in-process), p95",
            _p95(gql_times) * 1000,
            "ms",
            "<= 100",
            _p95(gql_times) * 1000 <= 100,
            f"pointBuckets {{ ts min max mean last count }}, "
            f"median {statistics.median(gql_times) * 1000:.1f} ms",
            "hand-written DuckDB query",
            statistics.median(peer_times) / statistics.median(gql_times),
        ),
    ]


# --- the runs grid -------------------------------------------------------------------------


def _seed_runs(catalog: Catalog, n_series: int, days: int, until: date) -> None:
    started = datetime.now(UTC)
    batch: list[RunRecord] = []
    for d in range(days):
        day = until - timedelta(days=days - 1 - d)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for t in range(TASKS):
            name = f"{DATASET}/task{t:02d}"
            common = {
                "started_at": started,
                "interval_start": start,
                "interval_end": start + timedelta(days=1),
            }
            status = "failed" if (d * TASKS + t) % 37 == 0 else "success"
            batch.append(RunRecord(f"{d}-{t}", RUN_KIND, name, status, params={"seconds": 1.0}, **common))
            for s in range(n_series):
                bad = status == "failed" and s % 50 == 0
                batch.append(
                    RunRecord(
                        f"{d}-{t}-{s}",
                        SERIES_KIND,
                        name,
                        "failed" if bad else "success",
                        series_id=f"bench/s{s:04d}/P",
                        **common,
                    )
                )
            if len(batch) >= 20_000:
                catalog.record_runs(batch)
                batch = []
    catalog.record_runs(batch)


def _grid_in_python(catalog: Catalog, since: datetime) -> dict[tuple[str, date], Counter[str]]:
    cells: dict[tuple[str, date], Counter[str]] = {}
    for record in catalog.runs(kind=SERIES_KIND, limit=10_000_000):
        if record.interval_start is not None and record.interval_start >= since:
            cells.setdefault((record.name, record.interval_start.date()), Counter())[record.status] += 1
    return cells


def bench_grid(scale: float) -> list[Result]:
    n_series = max(int(1000 * scale), 10)
    days = 30
    until = date(2025, 1, 30)
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(Path(tmp))
        began = time.perf_counter()
        _seed_runs(services.catalog, n_series, days, until)
        seeded = time.perf_counter() - began
        since = datetime(2025, 1, 1, tzinfo=UTC)

        def ours() -> object:
            return op.run_grid(services, days=days, until=until)

        def peer() -> object:
            return _grid_in_python(services.catalog, since)

        grid = op.run_grid(services, days=days, until=until)
        assert len(grid.cells) == TASKS * days
        cell = op.run_grid(services, days=1, until=until, task=f"{DATASET}/task00", series_counts=True)
        assert sum(cell.cells[0].series.values()) == n_series
        cell_times = []
        for _ in range(10):
            started = time.perf_counter()
            op.run_grid(services, days=1, until=until, task=f"{DATASET}/task00", series_counts=True)
            cell_times.append(time.perf_counter() - started)
        ours_times = []
        for _ in range(10):
            started = time.perf_counter()
            ours()
            ours_times.append(time.perf_counter() - started)
        ours_s, peer_s = interleaved(ours, peer, rounds=1)
        cells = "cells { task day status seriesFailed }"
        query = f'{{ runGrid(days: {days}, until: "{until}") {{ days tasks {cells} }} }}'
        app = create_app(services)

        async def over_graphql() -> list[float]:
            took = []
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
                for _ in range(10):
                    started = time.perf_counter()
                    (await c.post("/graphql", json={"query": query})).raise_for_status()
                    took.append(time.perf_counter() - started)
            return took

        gql_times = asyncio.run(over_graphql())
        services.catalog.close()
    records = n_series * TASKS * days
    return [
        Result(
            "dashboard",
            f"runs grid {n_series} series × {TASKS} tasks × {days} days, p95",
            _p95(ours_times),
            "s",
            "<= 1",
            _p95(ours_times) <= 1,
            f"{records:,} series records (seeded in {seeded:.0f} s)",
            "every record through Catalog.runs, grouped in Python",
            peer_s / ours_s,
        ),
        Result(
            "dashboard",
            "runs grid: one cell's series counted on demand, p95",
            _p95(cell_times),
            "s",
            "<= 1",
            _p95(cell_times) <= 1,
            f"{n_series} series records of one task-day (index on kind, name)",
        ),
        Result(
            "dashboard",
            "runs grid over GraphQL (in-process), p95",
            _p95(gql_times),
            "s",
            "<= 1",
            _p95(gql_times) <= 1,
            "runGrid { days tasks cells {...} }",
            "every record through Catalog.runs, grouped in Python",
            peer_s / statistics.median(gql_times),
        ),
    ]


# --- the explorer in Chromium ----------------------------------------------------------------

PEER_JS = """async (ids) => {
  const t0 = performance.now();
  const q = `query($id: String!) { pointColumns(seriesId: $id) { ts value } }`;
  const answers = await Promise.all(ids.map((id) => fetch("/graphql", { method: "POST",
    headers: { "content-type": "application/json" }, body: JSON.stringify({ query: q, variables: { id } }) })
    .then((r) => r.json())));
  const xs = answers[0].data.pointColumns.ts.map((t) => Date.parse(t) / 1000);
  const data = [xs, ...answers.map((a) => a.data.pointColumns.value)];
  const holder = document.createElement("div"); document.body.append(holder);
  const u = new uPlot({ width: 1200, height: 420, scales: { x: { time: true } },
    series: [{}, ...ids.map((id) => ({ label: id, stroke: "#4ea1ff" }))] }, data, holder);
  await new Promise((r) => requestAnimationFrame(() => r()));
  const took = performance.now() - t0; u.destroy(); holder.remove();
  return took;
}"""


def bench_explorer(scale: float) -> list[Result]:
    if not CHROMIUM.exists():
        return [Result("dashboard", "explorer first paint", float("nan"), "ms", detail=f"{CHROMIUM} missing")]
    import uvicorn
    from playwright.sync_api import sync_playwright

    minutes = max(int(7 * 1440 * scale), 600)
    ids = [f"bench/power/P{i:02d}" for i in range(12)]
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(Path(tmp))
        for sid in ids:
            _write_series(services, sid, minutes)
        config = uvicorn.Config(
            create_app(services), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        hash_ = "#/explorer?" + "&".join(f"series={sid}" for sid in ids)
        paints, charts, zooms, peers = [], [], [], []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                for _ in range(5):
                    page = browser.new_page(viewport={"width": 1400, "height": 950})
                    page.goto(f"{url}/{hash_}")
                    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=60_000)
                    timing: dict[str, Any] = page.evaluate(
                        "() => ({ fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {})"
                        ".startTime, "
                        f"drawn: +{CHART}.dataset.drawn }})"
                    )
                    paints.append(timing["fcp"])
                    charts.append(timing["drawn"])
                    box = page.locator("[data-testid=explorer-plot] .u-over").bounding_box()
                    assert box is not None
                    before = page.evaluate("() => performance.now()")
                    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + 40)
                    page.mouse.down()
                    page.mouse.move(box["x"] + box["width"] * 0.50, box["y"] + 40, steps=3)
                    page.mouse.up()
                    page.wait_for_function(f"() => {CHART}.dataset.zooms === '1'")
                    page.wait_for_function(f"() => +{CHART}.dataset.drawn > {before}")
                    zooms.append(
                        page.evaluate(
                            "() => +document.querySelector('[data-testid=explorer-chart]').dataset.drawn"
                        )
                        - before
                    )
                    peers.append(page.evaluate(PEER_JS, ids))
                    page.close()
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            services.catalog.close()
    med = statistics.median
    detail = f"12 series × {minutes:,} minutely points, 5 page loads"
    return [
        Result("dashboard", "explorer first contentful paint (median)", med(paints), "ms", "", None, detail),
        Result(
            "dashboard",
            "explorer chart drawn after navigation (median)",
            med(charts),
            "ms",
            "",
            None,
            detail,
            "12 series as raw points (pointColumns) drawn in the same page",
            med(peers) / med(charts),
        ),
        Result(
            "dashboard",
            "explorer zoom: drag → finer buckets redrawn (median)",
            med(zooms),
            "ms",
            "",
            None,
            detail,
            "12 series as raw points (pointColumns) drawn in the same page",
            med(peers) / med(zooms),
        ),
    ]


def run(scale: float) -> list[Result]:
    """All three: buckets, runs grid, explorer."""
    return bench_buckets(scale) + bench_grid(scale) + bench_explorer(scale)
