"""The Kafka-Connect-shaped connector API over a real InfluxDB: the original's registration request
with only ``connector.class`` changed declares a connector that the platform's connector service runs;
pause, resume, restart, delete; the declaration survives a restart of the platform.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from sparkhu.app.connectors import ConnectorManager
from sparkhu.app.runtime import Runtime
from sparkhu.config import GatewaySettings, Settings
from sparkhu.connectors.influx_client import InfluxClient
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices

pytestmark = pytest.mark.anyio

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0_NS = 1_609_426_800 * 10**9


def lines(minutes: range) -> bytes:
    return "".join(
        f"electricity,zone={z} P={m}.5 {T0_NS + m * 60 * 10**9}\n" for m in minutes for z in ("WHE", "FGE")
    ).encode()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    with Runtime(settings) as opened:
        yield opened


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewayServices.of(runtime, settings=GatewaySettings(token=TOKEN)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://connect") as client:
        yield client


def until(condition, manager: ConnectorManager, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        manager.reconcile()
        time.sleep(0.1)
    manager.reconcile()


async def test_the_original_registration_request_runs_with_only_the_class_changed(
    api: httpx.AsyncClient, runtime: Runtime, influx_server
) -> None:
    influx = InfluxClient(influx_server.url, who="test")
    influx.execute('CREATE DATABASE "AMPds2"')
    influx.write("AMPds2", lines(range(10)))
    request = {
        "name": "mock_data_rewinder",
        "config": {
            "connector.class": "sparkhu.influxdb",  # was io.confluent.influxdb.source.InfluxdbSourceConnector
            "influxdb.url": influx_server.url,
            "topic.prefix": "AMPds2_tests_",
            "topic.mapper": "measurement",
            "influxdb.db": "AMPds2",
            "mode": "timestamp",
        },
    }
    assert (await api.post("/connectors", json=request)).status_code == 401
    created = await api.post("/connectors", json=request, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "mock_data_rewinder" and created.json()["type"] == "source"
    assert (await api.post("/connectors", json=request, headers=AUTH)).status_code == 409
    assert (await api.get("/connectors")).json() == ["mock_data_rewinder"]
    assert (await api.get("/connectors/mock_data_rewinder/config")).json()["influxdb.db"] == "AMPds2"
    status = (await api.get("/connectors/mock_data_rewinder/status")).json()
    assert status["connector"]["state"] == "UNASSIGNED"

    manager = ConnectorManager(runtime, check_s=0.1)
    dataset = "AMPds2_electricity"

    def landed() -> int:
        try:
            return runtime.lake.read("raw", dataset).num_rows
        except Exception:
            return 0

    until(lambda: landed() == 20, manager)
    status = (await api.get("/connectors/mock_data_rewinder/status")).json()
    assert status["connector"]["state"] == "RUNNING"
    (task,) = status["tasks"]
    assert task["name"] == "mock_data_rewinder.electricity" and task["points"] == 20
    assert task["watermark"].startswith("2020-12-31T15:09:00") and task["lag_s"] > 0

    assert (await api.put("/connectors/mock_data_rewinder/pause", headers=AUTH)).status_code == 202
    manager.reconcile()
    assert (await api.get("/connectors/mock_data_rewinder/status")).json()["connector"]["state"] == "PAUSED"
    assert not manager.running
    assert all(t.name != "connector mock_data_rewinder.electricity" for t in threading.enumerate())

    # A new platform (a restart) finds the declaration in the catalog and resumes from the watermark.
    influx.write("AMPds2", lines(range(10, 13)))
    restarted = ConnectorManager(runtime, check_s=0.1)
    assert (await api.put("/connectors/mock_data_rewinder/resume", headers=AUTH)).status_code == 202
    until(lambda: landed() == 26, restarted)
    assert (await api.post("/connectors/mock_data_rewinder/restart", headers=AUTH)).status_code == 204
    restarted.reconcile()
    assert restarted.running["mock_data_rewinder"].declared.generation == 1
    assert (await api.delete("/connectors/mock_data_rewinder", headers=AUTH)).status_code == 204
    restarted.reconcile()
    assert not restarted.running
    gone = await api.get("/connectors/mock_data_rewinder")
    assert gone.status_code == 404 and gone.json()["error_code"] == 404
    assert runtime.catalog.series("AMPds2/electricity/WHE.P").count == 13


async def test_bad_configs_are_refused_with_the_key_named(api: httpx.AsyncClient) -> None:
    bulk = {
        "connector.class": "sparkhu.influxdb",
        "influxdb.url": "http://h:1",
        "influxdb.db": "d",
        "mode": "bulk",
    }
    answer = await api.put("/connectors/x/config", json=bulk, headers=AUTH)
    assert (
        answer.status_code == 400 and "connectors.x.mode: 'bulk' is not supported" in answer.json()["message"]
    )
    unknown = await api.post(
        "/connectors", json={"name": "y", "config": {"connector.class": "ftp"}}, headers=AUTH
    )
    assert unknown.status_code == 400 and "unknown source kind 'ftp'" in unknown.json()["message"]
    wrong = {"connector.class": "sparkhu.kafka", "topic": "t", "source": "s", "measurement": "m"}
    missing = await api.put("/connectors/z/config", json=wrong, headers=AUTH)
    assert (
        missing.status_code == 400 and "connectors.z.bootstrap: Field required" in missing.json()["message"]
    )
    assert (await api.get("/connectors")).json() == []
