"""The GraphQL schema over a real catalog, lake and prediction store (see conftest)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from tests.gateway.conftest import (
    BAND,
    HORIZON,
    N_POINTS,
    OTHER,
    SID,
    TOKEN,
    Stack,
    actual_points,
    error_code,
    forecasts,
    gql,
    minutes,
)
from websockets.sync.client import ClientConnection, connect

from sparkhu.config import GatewaySettings
from sparkhu.errors import InputError
from sparkhu.gateway.app import create_app
from sparkhu.gateway.resolvers import DEFAULT_REQ_NUM
from sparkhu.timeaxis import parse_time

anyio = pytest.mark.anyio
pytestmark = pytest.mark.integration  # GraphQL over the configuration's catalog and prediction store

POINTS = (
    "query($id: String!, $start: DateTime, $end: DateTime, $limit: Int) {"
    " points(seriesId: $id, start: $start, end: $end, limit: $limit) { ts value } }"
)
SET_ALPHA = (
    "mutation($id: String!, $a: Float!) { setBlendAlpha(seriesId: $id, alpha: $a) { seriesId alpha } }"
)


def iso(minute: float) -> str:
    return minutes(minute).isoformat().replace("+00:00", "Z")


# --- queries ---------------------------------------------------------------------------


@anyio
async def test_series_lists_the_catalog(client: httpx.AsyncClient):
    body = await gql(
        client, "{ series { id source measurement field unit periodSeconds firstTs lastTs count } }"
    )
    by_id = {s["id"]: s for s in body["data"]["series"]}
    assert set(by_id) == {SID, OTHER}
    whe = by_id[SID]
    assert (whe["source"], whe["measurement"], whe["field"], whe["unit"]) == (
        "ampds2",
        "electricity",
        "WHE.P",
        "W",
    )
    assert whe["periodSeconds"] == 60.0
    assert whe["count"] == N_POINTS
    assert whe["firstTs"] == iso(0) and whe["lastTs"] == iso(N_POINTS - 1)
    only = await gql(client, '{ series(prefix: "ampds2/electricity/RSE", limit: 5) { id } }')
    assert only["data"]["series"] == [{"id": OTHER}]


@anyio
async def test_series_limit_out_of_range_is_bad_input(client: httpx.AsyncClient):
    body = await gql(client, "{ series(limit: 0) { id } }")
    assert error_code(body) == "BAD_INPUT"
    assert "limit" in body["errors"][0]["message"]


@anyio
async def test_unknown_and_malformed_series(client: httpx.AsyncClient):
    unknown = await gql(client, POINTS, {"id": "ampds2/electricity/NOPE"})
    assert error_code(unknown) == "NOT_FOUND"
    assert "ampds2/electricity/NOPE" in unknown["errors"][0]["message"]
    malformed = await gql(client, '{ seriesById(id: "not-a-series") { id } }')
    assert error_code(malformed) == "BAD_INPUT"
    assert "source/measurement/field" in malformed["errors"][0]["message"]


@anyio
async def test_points_in_a_range(client: httpx.AsyncClient):
    body = await gql(client, POINTS, {"id": SID, "start": iso(10), "end": iso(20)})
    pts = body["data"]["points"]
    assert [p["ts"] for p in pts] == [iso(m) for m in range(10, 20)]
    assert [p["value"] for p in pts] == [1000.0 + m for m in range(10, 20)]
    limited = await gql(client, POINTS, {"id": SID, "start": iso(100), "limit": 3})
    assert [p["ts"] for p in limited["data"]["points"]] == [iso(100), iso(101), iso(102)]


@anyio
async def test_timestamps_with_offsets_are_read_as_utc(client: httpx.AsyncClient):
    # 09:30 in Seoul is 00:30 UTC; a naive timestamp is UTC.
    seoul = await gql(client, POINTS, {"id": SID, "start": "2024-03-01T09:30:00+09:00", "limit": 1})
    naive = await gql(client, POINTS, {"id": SID, "start": "2024-03-01T00:30:00", "limit": 1})
    assert seoul["data"]["points"] == naive["data"]["points"] == [{"ts": iso(30), "value": 1030.0}]


@anyio
async def test_malformed_timestamps_are_bad_input(client: httpx.AsyncClient):
    as_variable = await gql(client, POINTS, {"id": SID, "start": "yesterday"})
    assert error_code(as_variable) == "BAD_INPUT"
    assert "'yesterday' is not an ISO 8601 timestamp" in as_variable["errors"][0]["message"]
    as_literal = await gql(client, f'{{ points(seriesId: "{SID}", end: "2024-13-45") {{ ts }} }}')
    assert error_code(as_literal) == "BAD_INPUT"
    as_number = await gql(client, f'{{ points(seriesId: "{SID}", start: 5) {{ ts }} }}')
    assert error_code(as_number) == "BAD_INPUT"


def test_parse_time_rejects_garbage():
    with pytest.raises(InputError, match=r"start: '2024-02-30' is not an ISO 8601 timestamp"):
        parse_time("2024-02-30", "start")


@anyio
async def test_reversed_range_is_bad_input(client: httpx.AsyncClient):
    body = await gql(client, POINTS, {"id": SID, "start": iso(20), "end": iso(10)})
    assert error_code(body) == "BAD_INPUT"
    assert "is not after start" in body["errors"][0]["message"]


@anyio
async def test_limits(client: httpx.AsyncClient):
    too_many = await gql(client, POINTS, {"id": SID, "limit": 100_001})
    assert error_code(too_many) == "LIMIT_EXCEEDED"
    assert "exceeds the gateway's maximum of 100000" in too_many["errors"][0]["message"]
    zero = await gql(client, POINTS, {"id": SID, "limit": 0})
    assert error_code(zero) == "BAD_INPUT"


@anyio
async def test_an_unbounded_query_over_max_points_is_refused(stack: Stack):
    app = create_app(stack.services(settings=GatewaySettings(max_points=100)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        body = await gql(c, POINTS, {"id": SID})
        assert error_code(body) == "LIMIT_EXCEEDED"
        assert "narrow start/end or pass a limit" in body["errors"][0]["message"]
        ok = await gql(c, POINTS, {"id": SID, "limit": 100})
        assert len(ok["data"]["points"]) == 100


@anyio
async def test_predictions_are_blended(client: httpx.AsyncClient):
    query = """query($id: String!, $start: DateTime) {
      predictions(seriesId: $id, start: $start) { ts value lower upper updates updatedAt } }"""
    body = await gql(client, query, {"id": SID, "start": iso(0)})
    preds = body["data"]["predictions"]
    assert [p["ts"] for p in preds] == [iso(m) for m in range(120, 141)]
    first, middle, last = preds[0], preds[10], preds[-1]
    assert (first["value"], first["updates"]) == (2000.0, 1)
    assert middle["value"] == pytest.approx(0.6 * 3000 + 0.4 * 2000)
    assert middle["updates"] == 2
    assert middle["lower"] == pytest.approx(middle["value"] - BAND)
    assert middle["upper"] == pytest.approx(middle["value"] + BAND)
    assert (last["value"], last["updates"]) == (3000.0, 1)
    window = await gql(
        client,
        f'{{ predictions(seriesId: "{SID}", start: "{iso(125)}", end: "{iso(200)}", limit: 2) {{ ts }} }}',
    )
    assert [p["ts"] for p in window["data"]["predictions"]] == [iso(125), iso(126)]


@anyio
async def test_columns_match_the_object_queries(client: httpx.AsyncClient):
    query = """query($id: String!, $start: DateTime) {
      points(seriesId: $id, start: $start) { ts value }
      pointColumns(seriesId: $id, start: $start) { count ts value }
      predictions(seriesId: $id) { ts value lower upper updates }
      predictionColumns(seriesId: $id) { count ts value lower upper updates } }"""
    data = (await gql(client, query, {"id": SID, "start": iso(170)}))["data"]
    cols = data["pointColumns"]
    assert cols["count"] == 10
    assert [{"ts": t, "value": v} for t, v in zip(cols["ts"], cols["value"], strict=True)] == data["points"]
    blended = data["predictionColumns"]
    names = ("ts", "value", "lower", "upper", "updates")
    as_rows = [dict(zip(names, row, strict=True)) for row in zip(*(blended[n] for n in names), strict=True)]
    assert blended["count"] == HORIZON + 1
    assert as_rows == data["predictions"]
    too_many = await gql(client, f'{{ predictionColumns(seriesId: "{SID}", limit: 100001) {{ count }} }}')
    assert error_code(too_many) == "LIMIT_EXCEEDED"


@anyio
async def test_raw_forecasts(client: httpx.AsyncClient):
    query = (
        "query($id: String!) { rawForecasts(seriesId: $id) { origin target step value lower upper model } }"
    )
    raw = (await gql(client, query, {"id": SID}))["data"]["rawForecasts"]
    assert len(raw) == 2 * HORIZON
    assert raw[0] == {
        "origin": iso(119),
        "target": iso(120),
        "step": 1,
        "value": 2000.0,
        "lower": 2000.0 - BAND,
        "upper": 2000.0 + BAND,
        "model": "ses",
    }
    assert [(r["target"], r["origin"]) for r in raw[1:3]] == [(iso(121), iso(119)), (iso(121), iso(120))]


FEATURE = """query($input: PredictionInput!) { featurePrediction(input: $input) {
  seriesId start end length feature { timestamps values } prediction { timestamps values } } }"""


@anyio
async def test_feature_prediction_defaults_to_50_points_from_start(client: httpx.AsyncClient):
    answer = await gql(
        client,
        FEATURE,
        {
            "input": {
                "dbName": "AMPds2",
                "tableName": "electricity",
                "featureName": "WHE.P",
                "start": iso(100),
            }
        },
    )
    fp = answer["data"]["featurePrediction"]
    assert fp["seriesId"] == SID
    assert fp["length"] == DEFAULT_REQ_NUM == 50
    assert fp["feature"]["timestamps"] == [iso(m) for m in range(100, 150)]
    assert fp["feature"]["values"][0] == 1100.0
    assert fp["start"] == iso(100)
    assert fp["end"] == iso(149)  # the last point's timestamp
    # the forecasts inside the same interval: targets 120..140
    assert fp["prediction"]["timestamps"] == [iso(m) for m in range(120, 141)]
    assert len(fp["prediction"]["values"]) == 21


@anyio
async def test_feature_prediction_with_end_or_req_num(client: httpx.AsyncClient):
    base = {"dbName": "AMPds2", "tableName": "electricity", "featureName": "WHE.P", "start": iso(0)}
    with_end = (await gql(client, FEATURE, {"input": {**base, "end": iso(130)}}))["data"]["featurePrediction"]
    assert with_end["length"] == 130
    assert with_end["end"] == iso(130)
    assert len(with_end["prediction"]["timestamps"]) == 10  # targets 120..129
    with_req = (await gql(client, FEATURE, {"input": {**base, "reqNum": 7}}))["data"]["featurePrediction"]
    assert with_req["length"] == 7
    both = (await gql(client, FEATURE, {"input": {**base, "end": iso(130), "reqNum": 5}}))["data"][
        "featurePrediction"
    ]
    assert both["feature"]["timestamps"] == [iso(m) for m in range(5)]


@anyio
async def test_feature_prediction_errors(client: httpx.AsyncClient):
    base = {"dbName": "AMPds2", "tableName": "electricity", "featureName": "NOPE", "start": iso(0)}
    assert error_code(await gql(client, FEATURE, {"input": base})) == "NOT_FOUND"
    bad_start = {**base, "featureName": "WHE.P", "start": "01/03/2024"}
    assert error_code(await gql(client, FEATURE, {"input": bad_start})) == "BAD_INPUT"
    too_many = {**base, "featureName": "WHE.P", "reqNum": 10**6}
    body = await gql(client, FEATURE, {"input": too_many})
    assert error_code(body) == "LIMIT_EXCEEDED"
    assert "reqNum" in body["errors"][0]["message"]
    missing = await gql(
        client, '{ featurePrediction(input: {dbName: "AMPds2", tableName: "electricity"}) { length } }'
    )
    assert error_code(missing) == "BAD_QUERY"


@anyio
async def test_runs_and_their_series(client: httpx.AsyncClient):
    body = await gql(
        client,
        """{ runs(kind: "train") {
          runId kind name status rowsIn rowsOut durationSeconds params series { id runs { runId } } } }""",
    )
    [run] = body["data"]["runs"]
    assert (run["runId"], run["kind"], run["name"], run["status"]) == ("run-1", "train", "ses", "success")
    assert (run["rowsIn"], run["rowsOut"]) == (N_POINTS, HORIZON)
    assert run["params"] == {"alpha": 0.6}
    assert run["durationSeconds"] is not None
    assert run["series"]["id"] == SID and run["series"]["runs"] == [{"runId": "run-1"}]
    assert (await gql(client, '{ runs(kind: "retention") { runId } }'))["data"]["runs"] == []
    assert error_code(await gql(client, "{ runs(limit: 5000) { runId } }")) == "BAD_INPUT"


@anyio
async def test_query_depth_is_limited(client: httpx.AsyncClient):
    deep = (
        "{ runs { series { runs { series { runs { series { runs { series { runs { runId } } } } } } } } } }"
    )
    body = await gql(client, deep)
    assert error_code(body) == "BAD_QUERY"
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert "data" not in body or body["data"] is None
    # introspection (GraphiQL) is not limited by depth
    intro = await gql(
        client,
        """{ __schema { types { name fields { name
          type { name ofType { name ofType { name ofType { name } } } } } } } }""",
    )
    assert "errors" not in intro


@anyio
async def test_unknown_field_is_bad_query(client: httpx.AsyncClient):
    body = await gql(client, "{ nope }")
    assert error_code(body) == "BAD_QUERY"


# --- mutations -------------------------------------------------------------------------


@anyio
async def test_mutations_are_disabled_without_a_token(stack: Stack):
    app = create_app(stack.services(settings=GatewaySettings(token=None)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        body = await gql(c, SET_ALPHA, {"id": SID, "a": 0.9}, headers={"Authorization": "Bearer anything"})
    assert error_code(body) == "FORBIDDEN"
    assert "mutations are disabled" in body["errors"][0]["message"]


@anyio
async def test_mutations_need_the_right_token(client: httpx.AsyncClient, stack: Stack):
    missing = await gql(client, SET_ALPHA, {"id": SID, "a": 0.9})
    assert error_code(missing) == "UNAUTHENTICATED"
    assert "missing bearer token" in missing["errors"][0]["message"]
    wrong = await gql(client, SET_ALPHA, {"id": SID, "a": 0.9}, headers={"Authorization": "Bearer guess"})
    assert error_code(wrong) == "UNAUTHENTICATED"
    basic = await gql(client, SET_ALPHA, {"id": SID, "a": 0.9}, headers={"Authorization": f"Basic {TOKEN}"})
    assert error_code(basic) == "UNAUTHENTICATED"
    assert stack.predictions.alphas() == {}
    assert stack.catalog.audit_log() == []


@anyio
async def test_set_blend_alpha_changes_blending_and_is_audited(client: httpx.AsyncClient, stack: Stack):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = await gql(client, SET_ALPHA, {"id": SID, "a": 1.0}, headers=auth)
    assert body["data"]["setBlendAlpha"] == {"seriesId": SID, "alpha": 1.0}
    assert stack.predictions.alphas() == {SID: 1.0}
    [entry] = stack.catalog.audit_log()
    assert entry["action"] == "set_blend_alpha" and entry["target"] == SID
    # with alpha = 1 a new forecast replaces the blended value outright
    stack.predictions.write(forecasts(SID, 121, 5000.0))
    preds = await gql(
        client, f'{{ predictions(seriesId: "{SID}", start: "{iso(122)}", limit: 1) {{ value updates }} }}'
    )
    assert preds["data"]["predictions"] == [{"value": 5000.0, "updates": 3}]


@anyio
async def test_set_blend_alpha_rejects_bad_input(client: httpx.AsyncClient):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    out_of_range = await gql(client, SET_ALPHA, {"id": SID, "a": 1.5}, headers=auth)
    assert error_code(out_of_range) == "BAD_INPUT"
    assert "alpha" in out_of_range["errors"][0]["message"]
    unknown = await gql(client, SET_ALPHA, {"id": "a/b/c", "a": 0.5}, headers=auth)
    assert error_code(unknown) == "NOT_FOUND"


# --- subscriptions (graphql-transport-ws over a real server) ----------------------------


@contextmanager
def open_subscription(base_url: str, query: str, variables: dict[str, Any]) -> Iterator[ClientConnection]:
    url = base_url.replace("http", "ws", 1) + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(ws.recv(timeout=5))["type"] == "connection_ack"
        ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})
        )
        yield ws


def receive(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    """The next non-ping message."""
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        if message["type"] == "ping":
            ws.send(json.dumps({"type": "pong"}))
            continue
        return message


@pytest.mark.timeout(30)
def test_prediction_updates_round_trip(stack: Stack, serve):
    url = serve(create_app(stack.services()))
    query = (
        "subscription($id: String!) { predictionUpdates(seriesId: $id, intervalMs: 50) { ts value updates } }"
    )
    with open_subscription(url, query, {"id": SID}) as ws:
        # keep forecasting (one new origin per round) until the subscription reports
        for round_ in range(40):
            origin = 130 + round_
            stack.predictions.write(forecasts(SID, origin, 4000.0))
            try:
                message = receive(ws, timeout=0.25)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no predictionUpdates message within 40 forecast rounds")
        assert message["type"] == "next" and message["id"] == "1", message
        points = message["payload"]["data"]["predictionUpdates"]
        assert points, message
        targets = [p["ts"] for p in points]
        assert targets == sorted(targets)
        assert all(iso(130) < ts <= iso(origin + HORIZON) for ts in targets)
        assert points[-1]["value"] == 4000.0 and points[-1]["updates"] == 1
        ws.send(json.dumps({"id": "1", "type": "complete"}))


@pytest.mark.timeout(30)
def test_point_updates_round_trip(stack: Stack, serve):
    url = serve(create_app(stack.services()))
    stack.add_points(actual_points(SID, N_POINTS, 10))
    query = """subscription($id: String!, $since: DateTime) {
      pointUpdates(seriesId: $id, since: $since, intervalMs: 50) { ts value } }"""
    with open_subscription(url, query, {"id": SID, "since": iso(N_POINTS - 1)}) as ws:
        message = receive(ws, timeout=10)
        assert message["type"] == "next", message
        pts = message["payload"]["data"]["pointUpdates"]
        assert [p["ts"] for p in pts] == [iso(m) for m in range(N_POINTS, N_POINTS + 10)]
        stack.add_points(actual_points(SID, N_POINTS + 10, 1))
        later = receive(ws, timeout=10)
        assert later["payload"]["data"]["pointUpdates"] == [
            {"ts": iso(N_POINTS + 10), "value": 1000.0 + N_POINTS + 10}
        ]


@pytest.mark.timeout(30)
def test_subscription_errors_are_typed(stack: Stack, serve):
    url = serve(create_app(stack.services()))
    query = (
        "subscription($id: String!, $ms: Int!) { predictionUpdates(seriesId: $id, intervalMs: $ms) { ts } }"
    )
    with open_subscription(url, query, {"id": "ampds2/electricity/NOPE", "ms": 100}) as ws:
        message = receive(ws, timeout=10)
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "NOT_FOUND", message
    with open_subscription(url, query, {"id": SID, "ms": 1}) as ws:
        message = receive(ws, timeout=10)
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "BAD_INPUT", message
    assert "intervalMs" in errors[0]["message"]
