"""Typed errors at the edges (issue 10, items 7 and 10): dates at the ends of the calendar,
infinite values, storage errors without server paths, transport errors as JSON, and a blank
token that disables mutations."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pyarrow as pa
import pytest
from tests.gateway.conftest import SID, Stack, error_code, gql

from sparkhu.config import GatewaySettings, Settings
from sparkhu.gateway import resolvers as r
from sparkhu.gateway.app import create_app
from sparkhu.gateway.auth import check_token
from sparkhu.gateway.errors import MutationsDisabled

anyio = pytest.mark.anyio

POINTS = f"/api/series/{SID}/points"


async def post_raw(client: httpx.AsyncClient, body: str) -> dict[str, Any]:
    """POST a body as given (Python's json writes Infinity and NaN, which clients may send)."""
    response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- the ends of the calendar ----------------------------------------------------------


@anyio
@pytest.mark.parametrize(
    "route", [POINTS, f"/api/series/{SID}/predictions", f"/api/series/{SID}/predictions?kind=raw"]
)
@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"start": "0001-01-01"}, None),
        ({"end": "0001-01-01T00:00:01"}, 0),
        ({"start": "9999-12-31T23:59:59.999999"}, 0),
        ({"start": "0001-01-01", "end": "9999-12-31T23:59:59.999999"}, None),
        ({"start": "9999-12-31", "limit": "5"}, 0),
    ],
)
async def test_rest_reads_at_the_ends_of_the_calendar(client: httpx.AsyncClient, route, params, count):
    answer = await client.get(route, params=params)
    assert answer.status_code == 200, answer.text
    if count is not None:
        assert answer.json()["count"] == count
    else:
        assert answer.json()["count"] > 0


@anyio
@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "10000-01-01", "0000-12-31", "-0001-01-01"],
)
async def test_dates_beyond_the_calendar_are_bad_input(client: httpx.AsyncClient, value: str):
    answer = await client.get(POINTS, params={"start": value})
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "BAD_INPUT"
    assert "start" in answer.json()["error"]["message"]
    body = await gql(
        client,
        "query($s: DateTime) { points(seriesId: $s0, start: $s) { ts } }".replace("$s0", json.dumps(SID)),
        {"s": value},
    )
    assert error_code(body) == "BAD_INPUT", body


@anyio
async def test_graphql_reads_at_the_ends_of_the_calendar(client: httpx.AsyncClient):
    late = "9999-12-31T23:59:59.999999"
    query = """query($id: String!, $s: DateTime!) {
      pointColumns(seriesId: $id, start: $s, limit: 5) { count }
      predictions(seriesId: $id, start: $s, limit: 5) { ts }
      early: points(seriesId: $id, end: "0001-01-01T00:00:01") { ts } }"""
    body = await gql(client, query, {"id": SID, "s": late})
    assert "errors" not in body, body
    assert body["data"] == {"pointColumns": {"count": 0}, "predictions": [], "early": []}
    feature = """query($s: DateTime!) { featurePrediction(input: {dbName: "AMPds2", tableName: "electricity",
      featureName: "WHE.P", start: $s}) { length } }"""
    for start in (late, "9999-12-31T23:59:59", "0001-01-01T00:00:00"):
        answer = await gql(client, feature, {"s": start})
        assert "errors" not in answer, (start, answer)


def test_arithmetic_at_the_end_of_the_calendar_saturates():
    from datetime import UTC, datetime, timedelta

    last = datetime.max.replace(tzinfo=UTC)
    assert r.later(last, timedelta(microseconds=1)) == last
    assert r.later(datetime(2024, 1, 1, tzinfo=UTC), timedelta(days=1)) == datetime(2024, 1, 2, tzinfo=UTC)


# --- infinite values -------------------------------------------------------------------


@anyio
@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e400"])
async def test_non_finite_variables_are_bad_input(client: httpx.AsyncClient, value: str):
    alpha = (
        '{"query": "mutation($a: Float!) { setBlendAlpha(seriesId: \\"%s\\", alpha: $a) { alpha } }",'
        ' "variables": {"a": %s}}'
    )
    body = await post_raw(client, alpha % (SID, value))
    assert error_code(body) == "BAD_INPUT", body
    assert "$a" in body["errors"][0]["message"]
    limit = (
        '{"query": "query($n: Int) { points(seriesId: \\"%s\\", limit: $n) { ts } }", "variables": {"n": %s}}'
    )
    body = await post_raw(client, limit % (SID, value))
    assert error_code(body) == "BAD_INPUT", body


@anyio
@pytest.mark.parametrize("value", ["Infinity", "1e400", "NaN", "9" * 400])
async def test_non_finite_rest_limits_are_bad_input(client: httpx.AsyncClient, value: str):
    answer = await client.get(POINTS, params={"limit": value})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] in {"BAD_INPUT", "LIMIT_EXCEEDED"}


def test_non_finite_values_are_answered_as_null():
    table = pa.table({"value": pa.array([1.5, float("inf"), float("-inf"), float("nan"), None])})
    assert r.columns(table, ("value",)) == {"value": [1.5, None, None, None, None]}


# --- server errors stay on the server --------------------------------------------------


@anyio
async def test_storage_errors_reach_clients_without_paths(stack: Stack, caplog: pytest.LogCaptureFixture):
    app = create_app(stack.services())
    lake = Path(urlparse(stack.lake.root).path)
    files = sorted(lake.rglob("*.parquet"))
    assert files
    for file in files:
        file.write_bytes(b"not parquet at all" * 10)
    root = str(lake.parent)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        with caplog.at_level(logging.ERROR):
            rest = await client.get(POINTS)
            graphql = await gql(client, f'{{ pointColumns(seriesId: "{SID}", limit: 3) {{ count }} }}')
    assert rest.status_code == 500 and rest.json()["error"]["code"] == "INTERNAL"
    assert root not in rest.text and "parquet" not in rest.text.lower()
    assert error_code(graphql) == "INTERNAL"
    assert root not in json.dumps(graphql) and "parquet" not in json.dumps(graphql).lower()
    # the operator still learns what broke, in the log
    assert any(root in record.getMessage() or root in str(record.exc_info) for record in caplog.records)


@anyio
async def test_an_unhealthy_catalog_is_reported_without_its_path(stack: Stack):
    app = create_app(stack.services())
    database = Path(str(stack.catalog.engine.url.database))
    stack.catalog.close()
    for leftover in database.parent.glob(f"{database.name}*"):
        leftover.unlink()
    database.write_bytes(b"this is not a database" * 100)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        down = await client.get("/healthz")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"
    assert str(database.parent) not in down.text


@anyio
@pytest.mark.parametrize(
    ("body", "needle"),
    [("{not json", "JSON"), ("{}", "query"), ('{"query": 5}', ""), ("[1, 2]", "")],
)
async def test_transport_errors_are_coded_json(client: httpx.AsyncClient, body: str, needle: str):
    answer = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] in {"BAD_REQUEST", "BAD_QUERY"}
    assert needle in error["message"]


# --- a blank token is no token ---------------------------------------------------------


@pytest.mark.parametrize("token", ["", "   "])
def test_a_blank_token_setting_is_no_token(tmp_path: Path, token: str):
    settings = Settings.load(
        toml_path=None, env={"SPARKHU_HOME": str(tmp_path), "SPARKHU_GATEWAY__TOKEN": token}
    )
    assert settings.gateway.token is None
    assert GatewaySettings(token=token).token is None
    with pytest.raises(MutationsDisabled, match="mutations are disabled"):
        check_token(token, f"Bearer {token}")


@anyio
async def test_a_blank_token_disables_mutations_consistently(stack: Stack):
    settings = GatewaySettings()
    object.__setattr__(settings, "token", "")  # even if a blank token got past the settings
    app = create_app(stack.services(settings=settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        config = (await client.get("/api/config")).json()
        body = await gql(
            client,
            "mutation($a: Float!) { setBlendAlpha(seriesId: $id, alpha: $a) { alpha } }".replace(
                "$id", json.dumps(SID)
            ),
            {"a": 0.5},
            headers={"Authorization": "Bearer "},
        )
    assert config["mutationsEnabled"] is False
    assert error_code(body) == "FORBIDDEN"
