"""Subscriptions that cost what they deliver, bounded per socket and in total (issue 10, item 6),
and WebSocket frames that are JSON but not messages (item 7). Over a real uvicorn server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from tests.gateway.conftest import N_POINTS, SID, Stack, actual_points, forecasts, minutes
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from sparkhu.config import GatewaySettings
from sparkhu.gateway.app import create_app
from sparkhu.storage.predictions import PredictionStore

PREDICTIONS = (
    "subscription($id: String!, $ms: Int!) { predictionUpdates(seriesId: $id, intervalMs: $ms) { ts value } }"
)
POINTS = """subscription($id: String!, $since: DateTime, $ms: Int!) {
  pointUpdates(seriesId: $id, since: $since, intervalMs: $ms) { ts value } }"""


def iso(minute: float) -> str:
    return minutes(minute).isoformat().replace("+00:00", "Z")


@contextmanager
def socket(base_url: str) -> Iterator[ClientConnection]:
    """An acknowledged graphql-transport-ws connection."""
    url = base_url.replace("http", "ws", 1) + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5, max_queue=None) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(ws.recv(timeout=5))["type"] == "connection_ack"
        yield ws


def subscribe(ws: ClientConnection, op_id: str, query: str, variables: dict[str, Any]) -> None:
    ws.send(
        json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}})
    )


def receive(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    """The next non-ping message."""
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        if message["type"] == "ping":
            ws.send(json.dumps({"type": "pong"}))
            continue
        return message


class CountingStore(PredictionStore):
    """The real prediction store, counting the look-ups a prediction feed polls with."""

    polls = 0

    def latest_origin(self, series_id: str) -> datetime | None:
        type(self).polls += 1
        return super().latest_origin(series_id)


# --- bounds ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_two_thousand_subscriptions_on_one_socket_are_bounded(stack: Stack, serve):
    settings = GatewaySettings(max_subscriptions_per_connection=20)
    url = serve(create_app(stack.services(settings=settings)))
    attempts = 2_000
    with httpx.Client(base_url=url, timeout=5) as probe, socket(url) as ws:
        assert probe.get("/healthz").status_code == 200  # connected and warm: what follows times the server
        for i in range(attempts):
            subscribe(ws, str(i), PREDICTIONS, {"id": SID, "ms": 1000})
        refused: list[dict[str, Any]] = []
        while len(refused) < attempts - 20:
            message = receive(ws, timeout=20)
            assert message["type"] == "error", message
            refused.append(message)
        assert {m["payload"][0]["extensions"]["code"] for m in refused} == {"TOO_MANY_SUBSCRIPTIONS"}
        assert "at most 20" in refused[0]["payload"][0]["message"]
        assert {m["id"] for m in refused} == {str(i) for i in range(20, attempts)}
        started = time.perf_counter()
        assert probe.get("/healthz").json() == {"status": "ok"}
        assert time.perf_counter() - started < 0.5
        # a completed operation frees its place
        ws.send(json.dumps({"id": "0", "type": "complete"}))
        subscribe(ws, "again", PREDICTIONS, {"id": SID, "ms": 1000})
        with pytest.raises(TimeoutError):
            receive(ws, timeout=0.5)  # accepted: nothing to say until a forecast changes


@pytest.mark.timeout(60)
def test_live_operations_are_bounded_over_all_sockets(stack: Stack, serve):
    settings = GatewaySettings(max_subscriptions_per_connection=2, max_subscriptions=3)
    url = serve(create_app(stack.services(settings=settings)))
    with socket(url) as first, socket(url) as second:
        for op_id in ("a", "b"):
            subscribe(first, op_id, PREDICTIONS, {"id": SID, "ms": 1000})
        subscribe(second, "c", PREDICTIONS, {"id": SID, "ms": 1000})
        with pytest.raises(TimeoutError):
            receive(second, timeout=0.5)
        subscribe(second, "d", PREDICTIONS, {"id": SID, "ms": 1000})
        refusal = receive(second, timeout=5)
        assert refusal["type"] == "error" and refusal["id"] == "d"
        assert refusal["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        assert "gateway already holds 3" in refusal["payload"][0]["message"]
    # closing the sockets gives every place back
    with socket(url) as third:
        deadline = time.monotonic() + 5
        while True:
            subscribe(third, "e", PREDICTIONS, {"id": SID, "ms": 1000})
            try:
                message = receive(third, timeout=0.3)
            except TimeoutError:
                break  # accepted
            assert message["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            assert time.monotonic() < deadline, "the closed sockets' operations are still counted"


@pytest.mark.timeout(60)
def test_subscriptions_are_costed_like_queries(stack: Stack, serve):
    url = serve(create_app(stack.services(settings=GatewaySettings(max_query_cost=2))))
    with socket(url) as ws:
        subscribe(ws, "1", POINTS, {"id": SID, "ms": 100})  # 1 + ts + value = 3
        message = receive(ws, timeout=5)
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "COST_EXCEEDED", message


# --- one poll per topic, whatever the number of subscribers ----------------------------


@pytest.mark.timeout(60)
def test_subscribers_of_one_series_share_one_poller(stack: Stack, serve):
    store = CountingStore(stack.catalog.engine, alpha=0.6)
    services = stack.services()
    services.predictions = store
    url = serve(create_app(services))
    subscribers, interval_ms = 24, 100
    with socket(url) as a, socket(url) as b, socket(url) as c:
        sockets = (a, b, c)
        for i in range(subscribers):
            subscribe(sockets[i % 3], str(i), PREDICTIONS, {"id": SID, "ms": interval_ms})
        time.sleep(0.5)  # every subscription has joined
        CountingStore.polls = 0
        began = time.monotonic()
        time.sleep(1.5)
        polls, elapsed = CountingStore.polls, time.monotonic() - began
        # one poller: about one look per interval (the machine may stretch an interval, never add one)
        assert 1 <= polls <= elapsed / (interval_ms / 1000) + 2, polls
        stack.predictions.write(forecasts(SID, 130, 4000.0))
        received: dict[str, Any] = {}
        for ws in sockets:
            while sum(1 for key in received if int(key) % 3 == sockets.index(ws)) < subscribers // 3:
                message = receive(ws, timeout=10)
                assert message["type"] == "next", message
                received[message["id"]] = message["payload"]["data"]["predictionUpdates"]
        assert set(received) == {str(i) for i in range(subscribers)}
        first = received["0"]
        assert first and first[-1]["value"] == 4000.0
        assert all(update == first for update in received.values())
    deadline = time.monotonic() + 10
    while services.live.topics():  # the last subscriber gone (the server notices), the poller stops
        assert time.monotonic() < deadline, "the poller outlived its subscribers"
        time.sleep(0.05)
    CountingStore.polls = 0
    time.sleep(0.3)
    assert CountingStore.polls == 0


@pytest.mark.timeout(60)
def test_point_subscribers_get_their_own_backlog_and_then_the_shared_updates(stack: Stack, serve):
    url = serve(create_app(stack.services()))
    with socket(url) as ws:
        subscribe(ws, "late", POINTS, {"id": SID, "since": iso(N_POINTS - 3), "ms": 50})
        subscribe(ws, "now", POINTS, {"id": SID, "since": None, "ms": 50})
        backlog = receive(ws, timeout=10)
        assert backlog["id"] == "late"
        assert [p["ts"] for p in backlog["payload"]["data"]["pointUpdates"]] == [
            iso(N_POINTS - 2),
            iso(N_POINTS - 1),
        ]
        stack.add_points(actual_points(SID, N_POINTS, 2))
        got: dict[str, list[str]] = {"late": [], "now": []}
        while len(got["late"]) < 2 or len(got["now"]) < 2:
            message = receive(ws, timeout=10)
            got[message["id"]] += [p["ts"] for p in message["payload"]["data"]["pointUpdates"]]
        assert got == {"late": [iso(N_POINTS), iso(N_POINTS + 1)], "now": [iso(N_POINTS), iso(N_POINTS + 1)]}


# --- frames that are JSON but not messages ---------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "frame",
    [
        "[]",
        "1",
        '"subscribe"',
        "null",
        '{"type": 5}',
        '{"type": "launch"}',
        '{"type": "subscribe", "id": ["x"], "payload": {"query": "{ series { id } }"}}',
        '{"type": "subscribe", "id": "1", "payload": []}',
        '{"type": "subscribe", "id": "1", "payload": {"query": 42}}',
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ series { id } }", "variables": [1]}}',
        '{"type": "complete", "id": {"a": 1}}',
    ],
)
def test_frames_that_are_not_messages_close_with_4400(stack: Stack, serve, frame: str):
    url = serve(create_app(stack.services()))
    with socket(url) as ws:
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400, closed.value
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


@pytest.mark.timeout(30)
def test_a_non_object_frame_before_init_closes_with_4400(stack: Stack, serve):
    url = serve(create_app(stack.services())).replace("http", "ws", 1) + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
        ws.send("[1, 2, 3]")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


@pytest.mark.timeout(30)
def test_the_legacy_protocol_without_limits_is_not_offered(stack: Stack, serve):
    url = serve(create_app(stack.services())).replace("http", "ws", 1) + "/graphql"
    with connect(url, subprotocols=["graphql-ws"], open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4406


# --- queries over the socket run off the event loop, like over HTTP ----------------------


@pytest.mark.timeout(60)
def test_queries_and_mutations_over_a_socket_are_answered(stack: Stack, serve):
    url = serve(create_app(stack.services()))
    with socket(url) as ws:
        subscribe(ws, "q", "query($id: String!) { seriesById(id: $id) { id count } }", {"id": SID})
        answer = receive(ws, timeout=10)
        assert answer == {
            "id": "q",
            "type": "next",
            "payload": {"data": {"seriesById": {"id": SID, "count": N_POINTS}}},
        }
        assert receive(ws, timeout=10) == {"id": "q", "type": "complete"}
        subscribe(ws, "m", 'mutation { setBlendAlpha(seriesId: "a/b/c", alpha: 0.5) { alpha } }', {})
        refused = receive(ws, timeout=10)
        assert refused["id"] == "m", refused
        assert refused["type"] == "next", refused  # the operation ran: its resolver refused
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert receive(ws, timeout=10) == {"id": "m", "type": "complete"}
        subscribe(ws, "bad", "query { nope }", {})
        invalid = receive(ws, timeout=10)
        assert invalid["type"] == "error" and invalid["payload"][0]["extensions"]["code"] == "BAD_QUERY"
        # the socket still serves subscriptions
        subscribe(ws, "s", POINTS, {"id": SID, "since": iso(N_POINTS - 2), "ms": 50})
        update = receive(ws, timeout=10)
        assert update["id"] == "s" and update["payload"]["data"]["pointUpdates"] == [
            {"ts": iso(N_POINTS - 1), "value": 1000.0 + N_POINTS - 1}
        ]


# --- the controller's events -------------------------------------------------------------

CONTROLLER = """subscription($id: String, $ms: Int!) {
  controllerEvents(seriesId: $id, intervalMs: $ms) { action seriesId actor detail } }"""


@pytest.mark.timeout(60)
def test_controller_events_are_pushed_as_they_are_audited_and_a_bad_series_is_refused(stack: Stack, serve):
    url = serve(create_app(stack.services()))
    stack.catalog.audit("controller", "retrain.triggered", SID, {"trigger": "old"})  # before: not sent
    with socket(url) as ws:
        subscribe(ws, "bad", CONTROLLER, {"id": "not-a-series", "ms": 50})
        refused = receive(ws, timeout=10)
        (error,) = refused["payload"]["errors"]  # one error, then the operation completes
        assert (
            error["extensions"]["code"] == "BAD_INPUT"
            and "is not source/measurement/field" in error["message"]
        )
        subscribe(ws, "one", CONTROLLER, {"id": SID, "ms": 50})
        subscribe(ws, "all", CONTROLLER, {"id": None, "ms": 50})
        time.sleep(0.3)  # both subscribed before the events
        stack.catalog.audit("retention", "delete", "lake/raw", {})  # not the controller's
        stack.catalog.audit("controller", "promotion.decided", SID, {"points": 30, "challenger_mae": 1.5})
        stack.catalog.audit("controller", "retrain.triggered", "other/a/b", {"trigger": "drift"})
        got: dict[str, list[tuple[str, str]]] = {"one": [], "all": []}
        while len(got["one"]) < 1 or len(got["all"]) < 2:
            message = receive(ws, timeout=10)
            if message["type"] == "complete":  # the refused operation's end
                assert message["id"] == "bad"
                continue
            for event in message["payload"]["data"]["controllerEvents"]:
                got[message["id"]].append((event["action"], event["seriesId"]))
                assert event["actor"] == "controller"
        assert got == {
            "one": [("promotion.decided", SID)],
            "all": [("promotion.decided", SID), ("retrain.triggered", "other/a/b")],
        }
