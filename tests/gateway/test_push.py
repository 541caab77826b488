"""HTTP push: InfluxDB 1.x ``/write`` as Telegraf's ``outputs.influxdb`` sends it, and JSON as
``outputs.http`` sends it — token-guarded, landed in the lake, bad lines quarantined with their reason.
"""

from __future__ import annotations

import base64
import gzip
import json

import httpx
import pytest
from tests.gateway.conftest import TOKEN, Stack

pytestmark = pytest.mark.anyio

T0_NS = 1_609_426_800 * 10**9
LINES = "".join(
    f"electricity,zone={z} P={m}.5,Q={m}i {T0_NS + m * 60 * 10**9}\n"
    for m in range(5)
    for z in ("WHE", "FGE")
)


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"telegraf:{password}".encode()).decode()}


async def test_telegraf_influxdb_output_works_unchanged(client: httpx.AsyncClient, stack: Stack) -> None:
    # What outputs.influxdb sends: CREATE DATABASE at start, then gzip line protocol, basic auth.
    created = await client.post("/query", data={"q": 'CREATE DATABASE "AMPds2"'}, headers=basic(TOKEN))
    assert created.status_code == 200 and created.json() == {"results": [{"statement_id": 0}]}
    headers = {**basic(TOKEN), "Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
    answer = await client.post(
        "/write?db=AMPds2&precision=ns", content=gzip.compress(LINES.encode()), headers=headers
    )
    assert answer.status_code == 204, answer.text
    table = stack.lake.read("raw", "AMPds2_electricity")
    assert table.num_rows == 20
    assert "AMPds2/electricity/WHE.P" in set(table.column("series_id").to_pylist())
    assert stack.catalog.series("AMPds2/electricity/FGE.Q").count == 5
    again = await client.post(
        "/write?db=AMPds2", content=LINES.encode(), headers={"Authorization": f"Token {TOKEN}"}
    )
    assert (
        again.status_code == 204 and stack.catalog.series("AMPds2/electricity/FGE.Q").count == 5
    )  # idempotent
    assert (await client.get("/ping")).status_code == 204


async def test_bad_lines_are_quarantined_and_the_good_ones_kept(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    body = "electricity,zone=WHE P=1.5 60000000000\nelectricity,zone=WHE P=oops 1\ngarbage\n"
    answer = await client.post(f"/write?db=AMPds2&p={TOKEN}", content=body.encode())
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("partial write: 2 line(s) quarantined; first: line 2: P: 'oops'")
    assert stack.lake.read("raw", "AMPds2_electricity").num_rows == 1
    bad = stack.lake.read_quarantine("AMPds2_push")
    assert bad.column("location").to_pylist() == ["line 2", "line 3"]


async def test_push_needs_the_token(client: httpx.AsyncClient) -> None:
    assert (await client.post("/write?db=AMPds2", content=LINES.encode())).status_code == 401
    wrong = await client.post("/write?db=AMPds2", content=LINES.encode(), headers=basic("nope"))
    assert wrong.status_code == 401 and "invalid bearer token" in wrong.json()["error"]
    assert (await client.post("/api/push", json={"metrics": []})).status_code == 401


async def test_telegraf_http_output_json(client: httpx.AsyncClient, stack: Stack) -> None:
    metrics = {
        "metrics": [
            {
                "name": "cpu",
                "tags": {"host": "h1", "cpu": "cpu0"},
                "fields": {"usage_user": 3.5, "state": "ok"},
                "timestamp": 1_609_426_800,
            },
            {
                "name": "cpu",
                "tags": {"host": "h1", "cpu": "cpu0"},
                "fields": {"usage_user": 4.0},
                "timestamp": 1_609_426_860,
            },
        ]
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = await client.post("/api/push?db=telegraf", content=json.dumps(metrics), headers=headers)
    assert answer.status_code == 400 and answer.json()["quarantined"] == 1  # the string field
    assert answer.json()["new"] == 2 and answer.json()["datasets"] == ["telegraf_cpu"]
    ids = stack.lake.read("raw", "telegraf_cpu").column("series_id").to_pylist()
    assert ids == ["telegraf/cpu/cpu0.h1.usage_user"] * 2
    own = [{"series_id": "AMPds2/electricity/WHE.P", "ts": 1_609_426_800_000, "value": 1.0}]
    assert (await client.post("/api/push", json=own, headers=headers)).json()["new"] == 1
