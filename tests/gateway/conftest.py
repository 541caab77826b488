"""A real gateway over a real catalog, lake and prediction store in tmp.

The catalog follows the ``settings`` fixture: SQLite, or PostgreSQL with
``--sparkhu-config=distributed`` (``test_schema.py`` is an integration module).

Seeded with one series (``ampds2/electricity/WHE.P``, 180 minutely points from
:data:`T0`), two overlapping forecasts of 20 steps (origins T0+119 min and T0+120 min, so
targets T0+121..139 min are blended twice) and one finished run record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
import uvicorn
from starlette.applications import Starlette

from sparkhu.config import GatewaySettings, Settings
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, RunRecord, SeriesInfo
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import FORECAST_SCHEMA, PredictionStore

SID = "ampds2/electricity/WHE.P"
OTHER = "ampds2/electricity/RSE.P"
DATASET = "ampds2_electricity"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
N_POINTS = 180
HORIZON = 20
TOKEN = "s3cret-token"
BAND = 150.0  # forecasts' lower/upper = value -/+ BAND


def minutes(n: float) -> datetime:
    """T0 plus ``n`` minutes."""
    return T0 + timedelta(minutes=n)


def us(ts: datetime) -> int:
    """Epoch microseconds."""
    return int(ts.timestamp() * 1_000_000)


def actual_points(series_id: str, first_minute: int, count: int) -> pa.Table:
    """Minutely points: value = 1000 + minute index."""
    idx = np.arange(first_minute, first_minute + count)
    return points(series_id, us(T0) + idx * 60_000_000, 1000.0 + idx)


def forecasts(series_id: str, origin_minute: int, value: float, horizon: int = HORIZON) -> pa.Table:
    """One forecast: origin at T0+origin_minute, targets the next ``horizon`` minutes, constant value."""
    steps = np.arange(1, horizon + 1, dtype="int32")
    origin = np.full(horizon, us(minutes(origin_minute)), dtype="int64")
    target = origin + steps.astype("int64") * 60_000_000
    ts_type = FORECAST_SCHEMA.field("origin_ts").type
    return pa.Table.from_arrays(
        [
            pa.array([series_id] * horizon, pa.string()),
            pa.array(origin).cast(ts_type),
            pa.array(target).cast(ts_type),
            pa.array(steps),
            pa.array(np.full(horizon, value)),
            pa.array(np.full(horizon, value - BAND)),
            pa.array(np.full(horizon, value + BAND)),
            pa.array(["ses"] * horizon, pa.string()),
        ],
        schema=FORECAST_SCHEMA,
    )


@dataclass
class Stack:
    """The real storage components under one tmp directory."""

    lake: Lake
    catalog: Catalog
    predictions: PredictionStore

    def add_points(self, table: pa.Table) -> None:
        """Write actuals to the lake and widen the catalog's stats, as ingest does."""
        self.lake.write("raw", DATASET, table)
        self.catalog.update_series_stats(table)

    def services(self, **overrides: Any) -> GatewayServices:
        """Gateway services over this stack (token set, UTC display unless overridden)."""
        settings = overrides.pop("settings", GatewaySettings(token=TOKEN))
        return GatewayServices(
            lake=self.lake,
            catalog=self.catalog,
            predictions=self.predictions,
            settings=settings,
            actuals=("raw", DATASET),
            timezone=overrides.pop("timezone", "UTC"),
            **overrides,
        )


@pytest.fixture
def stack(tmp_path: Path, settings: Settings) -> Iterator[Stack]:
    """Seeded lake + catalog (the configuration's) + prediction store."""
    catalog = Catalog(settings.storage.catalog)
    lake = Lake((tmp_path / "lake").as_uri())
    store = PredictionStore(catalog.engine, alpha=0.6)
    s = Stack(lake, catalog, store)
    catalog.upsert_series(SeriesInfo.of(SID, unit="W", period_s=60.0, regular=True))
    catalog.upsert_series(SeriesInfo.of(OTHER, unit="W", period_s=60.0))
    s.add_points(actual_points(SID, 0, N_POINTS))
    store.write(forecasts(SID, 119, 2000.0))
    store.write(forecasts(SID, 120, 3000.0))
    catalog.start_run(
        RunRecord(
            run_id="run-1",
            kind="train",
            name="ses",
            status="running",
            started_at=minutes(0),
            series_id=SID,
            params={"alpha": 0.6},
        )
    )
    catalog.finish_run("run-1", "success", rows_in=N_POINTS, rows_out=HORIZON)
    yield s
    catalog.close()


@pytest.fixture
def app(stack: Stack) -> Starlette:
    """The gateway over the seeded stack, token configured, UTC display."""
    return create_app(stack.services())


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client of ``app``."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST a GraphQL operation; returns the JSON body (data and/or errors)."""
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_code(body: dict[str, Any]) -> str:
    """The code of the first GraphQL error."""
    assert body.get("errors"), body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


@pytest.fixture
def serve() -> Iterator[Callable[[Starlette], str]]:
    """Start uvicorn servers on 127.0.0.1 (a free port each) in threads; returns their base URL."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Starlette) -> str:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.01)
        running.append((server, thread))
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)
