"""Gateway under load: 20 concurrent GraphQL clients while points stream in, an abuser beside them.

A real uvicorn server in a child process (so that the load generator does not share its
interpreter) over a real SQLite catalog, lake and prediction store; in the same process a writer
thread streams points and forecasts into them, as ``sparkhu up`` does beside its gateway.

* **ours**: 20 clients, each looping over the dashboard's realistic mix — the series list,
  actuals over 6 h (``points``), blended forecasts over 6 h (``predictions``) and the original
  gateway's ``featurePrediction`` (50 points) — while one more client keeps sending the issue's
  amplification request (100 aliased ``pointColumns(limit: 100000)``) and a health probe
  measures ``/healthz``;
* **peer**: the same 20 clients with the same mix as plain HTTP GETs to a bare Starlette app
  over the same store, answering the same data as JSON columns (sync endpoints, thread pool):
  the floor a hand-written REST service would give; no abuser (it has no way to amplify).

Figures: p50/p99 latency and requests/s of the mix for ours, requests/s for the peer, and the
ratio (ours / peer), run A/B/B/A with :func:`bench.interleaved`. Works against any checkout
(it uses nothing but ``create_app`` and the storage classes), so the same file measures before
and after a change: ``PYTHONPATH=<checkout>/src:$PWD python -m bench gateway_load``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from bench import Result, interleaved

DATASET = "ampds2_electricity"
SERIES = [f"ampds2/electricity/{name}" for name in ("WHE.P", "RSE.P", "GRE.P", "MHE.P")]
MINUTE_US = 60_000_000
HORIZON = 20
CLIENTS = 20
TARGET_P99_MS = 250.0
TARGET_RPS = 150.0

SERIES_Q = "{ series(limit: 100) { id unit periodSeconds lastTs count } }"
POINTS_Q = """query($id: String!, $start: DateTime!, $end: DateTime!) {
  points(seriesId: $id, start: $start, end: $end) { ts value } }"""
PREDICTIONS_Q = """query($id: String!, $start: DateTime!) {
  predictions(seriesId: $id, start: $start) { ts value lower upper } }"""
FEATURE_Q = """query($start: DateTime!, $f: String!) {
  featurePrediction(
    input: {dbName: "AMPds2", tableName: "electricity", featureName: $f, start: $start, reqNum: 50}
  ) { length feature { timestamps values } prediction { timestamps values } } }"""


def _amplification() -> str:
    fields = " ".join(
        f'a{i}: pointColumns(seriesId: "{SERIES[0]}", limit: 100000) {{ ts value }}' for i in range(100)
    )
    return "{ " + fields + " }"


# --- the store ---------------------------------------------------------------------------


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def _forecast(series_id: str, origin_us: int, level: float) -> pa.Table:
    from sparkhu.storage.predictions import FORECAST_SCHEMA

    steps = np.arange(1, HORIZON + 1, dtype="int32")
    target = origin_us + steps.astype("int64") * MINUTE_US
    values = level + steps.astype("float64")
    ts = FORECAST_SCHEMA.field("origin_ts").type
    return pa.Table.from_arrays(
        [
            pa.array([series_id] * HORIZON, pa.string()),
            pa.array(np.full(HORIZON, origin_us)).cast(ts),
            pa.array(target).cast(ts),
            pa.array(steps),
            pa.array(values),
            pa.array(values - 50),
            pa.array(values + 50),
            pa.array(["ses"] * HORIZON, pa.string()),
        ],
        schema=FORECAST_SCHEMA,
    )


def _seed(root: Path, days: int) -> datetime:
    """History of ``days`` minutely days per series and 6 h of forecasts; returns the next minute."""
    from sparkhu.series import points
    from sparkhu.storage.catalog import Catalog, SeriesInfo
    from sparkhu.storage.lake import Lake
    from sparkhu.storage.predictions import PredictionStore

    catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
    lake = Lake((root / "lake").as_uri())
    store = PredictionStore(catalog.engine)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    n = days * 1440
    t0 = _us(end) - n * MINUTE_US
    idx = np.arange(n)
    for k, sid in enumerate(SERIES):
        catalog.upsert_series(SeriesInfo.of(sid, unit="W", period_s=60.0, regular=True))
        actuals = points(sid, t0 + idx * MINUTE_US, 1000 + 300 * np.sin(idx / 240.0 + k))
        lake.write("raw", DATASET, actuals)
        catalog.update_series_stats(actuals)
        origins = t0 + (n - 360 + np.arange(0, 360, 5)) * MINUTE_US
        store.write(pa.concat_tables([_forecast(sid, int(o), 1000.0 + k) for o in origins]))
    catalog.close()
    return end


def _writer(root: Path, start: datetime, stop: threading.Event) -> None:
    """Stream 5 points per series and a forecast per series every second, as the demo's sinks do."""
    from sparkhu.series import points
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake
    from sparkhu.storage.predictions import PredictionStore

    catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
    lake = Lake((root / "lake").as_uri())
    store = PredictionStore(catalog.engine)
    minute = _us(start)
    try:
        while not stop.wait(1.0):
            stamps = minute + np.arange(5) * MINUTE_US
            batch = pa.concat_tables([points(sid, stamps, 1000.0 + np.arange(5)) for sid in SERIES])
            lake.write("raw", DATASET, batch)
            catalog.update_series_stats(batch)
            for k, sid in enumerate(SERIES):
                store.write(_forecast(sid, int(stamps[-1]), 1000.0 + k))
            minute += 5 * MINUTE_US
    finally:
        catalog.close()


# --- the servers -------------------------------------------------------------------------


def _peer_app(root: Path) -> Any:
    """A bare Starlette app answering the same data as plain JSON columns."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake
    from sparkhu.storage.predictions import PredictionStore

    catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
    lake = Lake((root / "lake").as_uri())
    store = PredictionStore(catalog.engine)

    def iso(column: Any) -> list[str]:
        us = column.cast(pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        return np.datetime_as_string(us.astype("datetime64[us]"), unit="s", timezone="UTC").tolist()

    def moment(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    def series(request: Request) -> JSONResponse:
        rows = catalog.list_series(limit=100)
        return JSONResponse(
            [
                {
                    "id": s.series_id,
                    "unit": s.unit,
                    "periodSeconds": s.period_s,
                    "count": s.count,
                    "lastTs": None if s.last_ts is None else s.last_ts.isoformat(),
                }
                for s in rows
            ]
        )

    def actuals(request: Request) -> JSONResponse:
        q = request.query_params
        table = lake.read(
            "raw", DATASET, series=[q["id"]], start=moment(q.get("start")), end=moment(q.get("end"))
        )
        return JSONResponse({"ts": iso(table.column("ts")), "value": table.column("value").to_pylist()})

    def blended(request: Request) -> JSONResponse:
        q = request.query_params
        table = store.blended(q["id"], start=moment(q.get("start")), limit=100_001)
        return JSONResponse(
            {name: table.column(name).to_pylist() for name in ("value", "lower", "upper")}
            | {"ts": iso(table.column("target_ts"))}
        )

    def feature(request: Request) -> JSONResponse:
        q = request.query_params
        start = moment(q["start"])
        assert start is not None
        table = lake.read(
            "raw", DATASET, series=[q["id"]], start=start, end=start + timedelta(minutes=76)
        ).slice(0, 50)
        last = table.column("ts")[-1].as_py() if table.num_rows else None
        end = None if last is None else last + timedelta(microseconds=1)
        prediction = store.blended(q["id"], start=start, end=end, limit=50)
        return JSONResponse(
            {
                "length": table.num_rows,
                "feature": {
                    "timestamps": iso(table.column("ts")),
                    "values": table.column("value").to_pylist(),
                },
                "prediction": {
                    "timestamps": iso(prediction.column("target_ts")),
                    "values": prediction.column("value").to_pylist(),
                },
            }
        )

    def healthz(request: Request) -> JSONResponse:
        catalog.list_series(limit=1)
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/series", series),
            Route("/points", actuals),
            Route("/predictions", blended),
            Route("/feature", feature),
            Route("/healthz", healthz),
        ]
    )


def _our_app(root: Path) -> Any:
    from sparkhu.config import GatewaySettings
    from sparkhu.gateway.app import create_app
    from sparkhu.gateway.services import GatewayServices
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake
    from sparkhu.storage.predictions import PredictionStore

    catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
    services = GatewayServices(
        lake=Lake((root / "lake").as_uri()),
        catalog=catalog,
        predictions=PredictionStore(catalog.engine),
        settings=GatewaySettings(),
        actuals=("raw", DATASET),
    )
    return create_app(services)


def _serve(kind: str, root: str, port: int, start: datetime) -> None:
    """Child process: the app of ``kind`` under uvicorn, and the writer thread streaming into the store."""
    import uvicorn

    path = Path(root)
    app = _our_app(path) if kind == "ours" else _peer_app(path)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(path, start, stop), daemon=True)
    writer.start()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", ws="websockets-sansio")
    try:
        uvicorn.Server(config).run()
    finally:
        stop.set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the clients -------------------------------------------------------------------------


class Phase:
    """One server, its load and what was measured."""

    def __init__(self, kind: str, root: Path, start: datetime, requests_per_client: int) -> None:
        self.kind = kind
        self.root = root
        self.start = start
        self.per_client = requests_per_client
        self.latencies: list[float] = []
        self.health: list[float] = []
        self.refused = 0
        self.durations: list[float] = []
        self.errors: list[str] = []

    def __call__(self) -> None:
        port = _free_port()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.kind, str(self.root), port, self.start), daemon=True
        )
        process.start()
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or not process.is_alive():
                    raise RuntimeError(f"the {self.kind} server did not start")
                time.sleep(0.1)
            asyncio.run(self._load(url))
        finally:
            process.terminate()
            process.join(10)
            if process.is_alive():  # a server still busy with a monster request ignores the polite way
                process.kill()
                process.join(10)

    def _requests(
        self, i: int, now: datetime
    ) -> list[tuple[str, str, dict[str, Any] | None, dict[str, str]]]:
        """The mix for client ``i``: (method, path, JSON body, query parameters) of each request kind."""
        sid = SERIES[i % len(SERIES)]
        six_hours = (now - timedelta(hours=6)).isoformat()
        two_hours = (now - timedelta(hours=2)).isoformat()
        field = sid.rsplit("/", 1)[1]
        if self.kind == "ours":
            window = {"id": sid, "start": six_hours, "end": now.isoformat()}
            return [
                ("POST", "/graphql", {"query": SERIES_Q}, {}),
                ("POST", "/graphql", {"query": POINTS_Q, "variables": window}, {}),
                (
                    "POST",
                    "/graphql",
                    {"query": PREDICTIONS_Q, "variables": {"id": sid, "start": six_hours}},
                    {},
                ),
                ("POST", "/graphql", {"query": FEATURE_Q, "variables": {"start": two_hours, "f": field}}, {}),
            ]
        return [
            ("GET", "/series", None, {}),
            ("GET", "/points", None, {"id": sid, "start": six_hours, "end": now.isoformat()}),
            ("GET", "/predictions", None, {"id": sid, "start": six_hours}),
            ("GET", "/feature", None, {"id": sid, "start": two_hours}),
        ]

    async def _load(self, url: str) -> None:
        limits = httpx.Limits(max_connections=CLIENTS + 4, max_keepalive_connections=CLIENTS + 4)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            done = asyncio.Event()

            async def worker(i: int) -> None:
                mix = self._requests(i, self.start)
                for n in range(self.per_client):
                    method, path, body, params = mix[(i + n) % len(mix)]
                    began = time.perf_counter()
                    try:
                        response = await client.request(method, path, json=body, params=params)
                    except httpx.TransportError as exc:  # a stalled server drops kept-alive connections
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    finally:
                        self.latencies.append(time.perf_counter() - began)
                    if response.status_code != 200 or (
                        method == "POST" and b'"errors"' in response.content[:20000]
                    ):
                        self.errors.append(response.text[:200])

            async def abuser() -> None:
                while not done.is_set():
                    try:
                        response = await client.post("/graphql", json={"query": _amplification()})
                        self.refused += b"COST_EXCEEDED" in response.content[:2000]
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)

            async def prober() -> None:
                while not done.is_set():
                    began = time.perf_counter()
                    try:
                        await client.get("/healthz")
                    except httpx.TransportError:
                        pass
                    self.health.append(time.perf_counter() - began)
                    await asyncio.sleep(0.1)

            side = [asyncio.create_task(prober())]
            if self.kind == "ours":
                side.append(asyncio.create_task(abuser()))
            began = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
            self.durations.append(time.perf_counter() - began)
            done.set()
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def run(scale: float) -> list[Result]:
    days = max(1, round(3 * scale))
    per_client = max(10, round(40 * scale))
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-gateway-load-") as tmp:
        root = Path(tmp)
        start = _seed(root, days)
        ours = Phase("ours", root, start, per_client)
        peer = Phase("peer", root, start, per_client)
        interleaved(ours, peer, rounds=1)  # A/B/B/A; each phase times its load alone (not the server's start)
    ours_s, peer_s = statistics.median(ours.durations), statistics.median(peer.durations)
    failed = (
        f"; failed: ours {len(ours.errors)}, peer {len(peer.errors)}" if ours.errors or peer.errors else ""
    )
    if failed:
        print(f"gateway_load: failed requests, e.g. ours {ours.errors[:2]}, peer {peer.errors[:2]}")
    n = CLIENTS * per_client
    rps, peer_rps = n / ours_s, n / peer_s
    p50, p99 = _pct(ours.latencies, 0.5), _pct(ours.latencies, 0.99)
    detail = (
        f"{CLIENTS} clients × {per_client} requests (series list, points 6 h, predictions 6 h, "
        f"featurePrediction 50) while points stream in; the 100-alias request beside them "
        f"({ours.refused} refused){failed}"
    )
    health = f"/healthz p99 {_pct(ours.health, 0.99):.0f} ms (peer {_pct(peer.health, 0.99):.0f} ms)"
    return [
        Result("gateway_load", "graphql mix p50", p50, "ms", "", None, detail),
        Result(
            "gateway_load",
            "graphql mix p99",
            p99,
            "ms",
            f"<= {TARGET_P99_MS:.0f}",
            p99 <= TARGET_P99_MS,
            health,
        ),
        Result(
            "gateway_load",
            "graphql mix throughput",
            rps,
            "requests/s",
            f">= {TARGET_RPS:.0f}",
            rps >= TARGET_RPS,
            f"peer {peer_rps:,.0f} requests/s, "
            f"p50 {_pct(peer.latencies, 0.5):.0f} ms / p99 {_pct(peer.latencies, 0.99):.0f} ms",
            peer="bare Starlette REST over the same store",
            ratio=rps / peer_rps,
        ),
    ]
