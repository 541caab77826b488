"""The ASGI app: REST routes, errors, /healthz, /metrics, the dashboard's static files."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.gateway.conftest import BAND, HORIZON, N_POINTS, OTHER, SID, Stack, gql, minutes
from websockets.sync.client import connect

from sparkhu.app.runtime import Runtime
from sparkhu.config import GatewaySettings, Settings
from sparkhu.errors import ConfigError
from sparkhu.gateway.app import STATIC_DIR, create_app
from sparkhu.gateway.errors import MetricsError
from sparkhu.gateway.metrics import Metrics
from sparkhu.gateway.services import GatewayServices

anyio = pytest.mark.anyio


def iso_z(minute: float) -> str:
    return minutes(minute).strftime("%Y-%m-%dT%H:%M:%SZ")


@anyio
async def test_config_serves_the_display_timezone(stack: Stack):
    app = create_app(stack.services(timezone="Asia/Seoul"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        config = (await c.get("/api/config")).json()
    assert config["timezone"] == "Asia/Seoul"
    assert config["maxPoints"] == 100_000
    assert config["mutationsEnabled"] is True
    assert config["actuals"] == {"zone": "raw", "dataset": "ampds2_electricity"}


def test_unknown_timezone_is_a_config_error(stack: Stack):
    with pytest.raises(ConfigError, match="'Mars/Olympus' is not an IANA time zone"):
        create_app(stack.services(timezone="Mars/Olympus"))


def test_services_from_settings(tmp_path: Path):
    env = {"SPARKHU_HOME": str(tmp_path), "SPARKHU_GATEWAY__TOKEN": "t", "SPARKHU_TIMEZONE": "Europe/Paris"}
    settings = Settings.load(toml_path=None, env=env)
    with Runtime(settings) as runtime:
        services = GatewayServices.of(runtime)
        assert services.settings.token == "t"
        assert services.timezone == "Europe/Paris"  # not a default: the settings' zone reaches the app
        assert services.catalog.list_series() == []


@anyio
async def test_series_routes(client: httpx.AsyncClient):
    listing = (await client.get("/api/series")).json()["series"]
    assert [s["id"] for s in listing] == sorted([SID, OTHER])
    one = (await client.get(f"/api/series/{SID}")).json()
    assert one["id"] == SID and one["count"] == N_POINTS and one["unit"] == "W"
    prefixed = (
        await client.get("/api/series", params={"prefix": "ampds2/electricity/R", "limit": "1"})
    ).json()
    assert [s["id"] for s in prefixed["series"]] == [OTHER]


@anyio
async def test_points_route(client: httpx.AsyncClient):
    answer = await client.get(
        f"/api/series/{SID}/points", params={"start": minutes(10).isoformat(), "limit": 3}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body == {
        "seriesId": SID,
        "count": 3,
        "ts": [iso_z(10), iso_z(11), iso_z(12)],
        "value": [1010.0, 1011.0, 1012.0],
    }
    everything = (await client.get(f"/api/series/{SID}/points")).json()
    assert everything["count"] == N_POINTS


@anyio
async def test_predictions_route(client: httpx.AsyncClient):
    blended = (await client.get(f"/api/series/{SID}/predictions")).json()
    assert blended["kind"] == "blended" and blended["count"] == HORIZON + 1
    assert blended["ts"][0] == iso_z(120)
    assert blended["updates"][:2] == [1, 2]
    assert blended["lower"][0] == 2000.0 - BAND and blended["upper"][0] == 2000.0 + BAND
    raw = (await client.get(f"/api/series/{SID}/predictions", params={"kind": "raw", "limit": "4"})).json()
    assert raw["count"] == 4
    assert raw["origin"][:3] == [iso_z(119), iso_z(119), iso_z(120)]
    assert raw["target"][:3] == [iso_z(120), iso_z(121), iso_z(121)]
    assert raw["model"] == ["ses"] * 4


@anyio
@pytest.mark.parametrize(
    ("path", "params", "status", "code", "needle"),
    [
        (f"/api/series/{SID}/points", {"start": "not-a-time"}, 400, "BAD_INPUT", "not an ISO 8601 timestamp"),
        (f"/api/series/{SID}/points", {"limit": "many"}, 400, "BAD_INPUT", "'many' is not an integer"),
        (
            f"/api/series/{SID}/points",
            {"limit": "100001"},
            400,
            "LIMIT_EXCEEDED",
            "exceeds the gateway's maximum",
        ),
        (
            f"/api/series/{SID}/points",
            {"start": minutes(5).isoformat(), "end": minutes(1).isoformat()},
            400,
            "BAD_INPUT",
            "is not after start",
        ),
        ("/api/series/ampds2/electricity/NOPE/points", {}, 404, "NOT_FOUND", "not in the catalog"),
        ("/api/series/ampds2/electricity/NOPE", {}, 404, "NOT_FOUND", "not in the catalog"),
        ("/api/series/just-one-part/predictions", {}, 400, "BAD_INPUT", "source/measurement/field"),
        (f"/api/series/{SID}/predictions", {"kind": "fancy"}, 400, "BAD_INPUT", "use blended or raw"),
        ("/api/series", {"limit": "0"}, 400, "BAD_INPUT", "limit"),
        ("/api/runs", {"limit": "-3"}, 400, "BAD_INPUT", "limit"),
        ("/api/nothing/here", {}, 404, "NOT_FOUND", "no API route /api/nothing/here"),
    ],
)
async def test_rest_errors(client: httpx.AsyncClient, path, params, status, code, needle):
    answer = await client.get(path, params=params)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert needle in error["message"]


@anyio
async def test_runs_route(client: httpx.AsyncClient):
    runs = (await client.get("/api/runs", params={"kind": "train"})).json()["runs"]
    assert [(r["runId"], r["status"], r["seriesId"]) for r in runs] == [("run-1", "success", SID)]


@anyio
async def test_healthz(client: httpx.AsyncClient, stack: Stack):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    database = Path(str(stack.catalog.engine.url.database))  # the embedded catalog's SQLite file
    stack.catalog.close()
    for leftover in database.parent.glob(f"{database.name}*"):
        leftover.unlink()
    database.write_bytes(b"this is not a database" * 100)
    down = await client.get("/healthz")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"


Key = tuple[str, frozenset[tuple[str, str]]]


def samples(text: str) -> dict[Key, float]:
    """Every sample of a Prometheus text exposition, keyed by :func:`key`."""
    return {
        key(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> Key:
    """A sample's name and label set (label order carries no meaning)."""
    return name, frozenset(labels.items())


PROM_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEInfNa]+$'
)


@anyio
async def test_metrics_are_prometheus_text(stack: Stack):
    registry = Metrics()
    registry.set_gauge("points_ingested", 1234, "Points written to the lake.")
    registry.gauge_callback(
        "series_known", "Series in the catalog.", lambda: len(stack.catalog.list_series())
    )
    app = create_app(stack.services(metrics=registry))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        for _ in range(3):
            await c.get(f"/api/series/{SID}/points", params={"limit": 5})
        await c.get("/api/series/ampds2/electricity/NOPE/points")
        await gql(c, "{ series { id } }")
        answer = await c.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or PROM_LINE.match(line), line
    route = "/api/series/{series_id:path}/points"
    got = samples(text)
    requests = "sparkhu_http_requests_total"
    assert got[key(requests, route=route, method="GET", status="200")] == 3
    assert got[key(requests, route=route, method="GET", status="404")] == 1
    assert got[key(requests, route="/graphql", method="POST", status="200")] == 1
    assert got[key("sparkhu_http_request_duration_seconds_count", route=route)] == 4
    assert got[key("sparkhu_http_request_duration_seconds_bucket", route=route, le="+Inf")] == 4
    assert "# TYPE sparkhu_http_request_duration_seconds histogram" in text
    assert "sparkhu_points_ingested 1234" in text
    assert "sparkhu_series_known 2" in text


def test_metrics_registry_escapes_labels_and_survives_broken_gauges():
    registry = Metrics()
    registry.observe_request('/a"b\\c', "GET", 200, 0.0001)
    registry.gauge_callback("broken", "Always fails.", lambda: 1 / 0)
    text = registry.render()
    assert 'route="/a\\"b\\\\c"' in text
    assert "sparkhu_broken NaN" in text


def test_metrics_exposition_parses_with_prometheus_client():
    registry = Metrics(buckets=(0.01, 0.005, 1.0))  # unsorted on purpose
    for seconds in (0.003, 0.005, 0.02, 7.0):
        registry.observe_request("/api/series", "GET", 200, seconds)
    registry.set_gauge("lag_seconds", 1.5, "Consumer lag.", labels={"topic": "raw", "group": "sink"})
    registry.set_gauge("lag_seconds", 2.5, labels={"group": "sink", "topic": "clean"})
    registry.gauge_callback("series_known", "Series in the catalog.", lambda: 7)
    families = {family.name: family for family in text_string_to_metric_families(registry.render())}
    assert families["sparkhu_http_requests"].type == "counter"
    assert families["sparkhu_http_request_duration_seconds"].type == "histogram"
    assert families["sparkhu_lag_seconds"].documentation == "Consumer lag."
    assert families["sparkhu_series_known"].documentation == "Series in the catalog."
    got = samples(registry.render())
    bucket = "sparkhu_http_request_duration_seconds_bucket"
    buckets = {le: got[key(bucket, route="/api/series", le=le)] for le in ("0.005", "0.01", "1.0", "+Inf")}
    assert buckets == {"0.005": 2, "0.01": 2, "1.0": 3, "+Inf": 4}  # cumulative, upper bound inclusive
    assert got[key("sparkhu_http_request_duration_seconds_sum", route="/api/series")] == pytest.approx(7.028)
    assert got[key("sparkhu_lag_seconds", topic="raw", group="sink")] == 1.5
    assert got[key("sparkhu_lag_seconds", topic="clean", group="sink")] == 2.5
    assert got[key("sparkhu_series_known")] == 7
    assert got[key("sparkhu_websocket_connections")] == 0


def test_metrics_registries_are_per_instance_and_callbacks_read_at_scrape_time():
    first, second = Metrics(), Metrics()
    first.set_gauge("points_ingested", 10)
    assert first.registry is not second.registry
    assert "sparkhu_points_ingested" not in second.render()
    known = [3]
    first.gauge_callback("series_known", "Series in the catalog.", lambda: known[0])
    known[0] = 5
    assert samples(first.render())[key("sparkhu_series_known")] == 5
    first.gauge_callback("series_known", "Series in the catalog, again.", lambda: 8)  # replaces
    assert samples(first.render())[key("sparkhu_series_known")] == 8


def test_metrics_misuse_names_the_gauge():
    registry = Metrics()
    registry.set_gauge("lag_seconds", 1, labels={"topic": "raw"})
    with pytest.raises(MetricsError, match=r"sparkhu_lag_seconds has labels \['topic'\]"):
        registry.set_gauge("lag_seconds", 1, labels={"group": "sink"})
    with pytest.raises(MetricsError, match="gauge sparkhu_lag_seconds cannot be registered"):
        registry.gauge_callback("lag_seconds", "Clashes with the gauge.", lambda: 1)
    with pytest.raises(MetricsError, match="gauge sparkhu_bad-name: not a Prometheus metric name"):
        registry.set_gauge("bad-name", 1)
    with pytest.raises(MetricsError, match="gauge sparkhu_worse name: not a Prometheus metric name"):
        registry.gauge_callback("worse name", "Not a name.", lambda: 1)
    with pytest.raises(MetricsError, match="gauge sparkhu_lag: label 'the topic' is not a Prometheus label"):
        registry.set_gauge("lag", 1, labels={"the topic": "raw"})
    assert "bad" not in registry.render() and "worse" not in registry.render()


@pytest.mark.timeout(30)
def test_metrics_count_open_websockets(stack: Stack, serve):
    url = serve(create_app(stack.services()))

    def open_sockets() -> float:
        return samples(httpx.get(f"{url}/metrics").text)[key("sparkhu_websocket_connections")]

    assert open_sockets() == 0
    ws_url = url.replace("http", "ws", 1) + "/graphql"
    with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=5):
        assert open_sockets() == 1
    deadline = time.monotonic() + 10
    while open_sockets() != 0:
        assert time.monotonic() < deadline, "the closed WebSocket is still counted"
        time.sleep(0.02)


@anyio
async def test_dashboard_is_served_without_external_resources(client: httpx.AsyncClient):
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert 'data-testid="page"' in html and 'src="frame.js"' in html  # the frame; pages are modules
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        if asset.startswith("data:"):
            continue
        assert not asset.startswith(("http:", "https:", "//")), asset
        assert (await client.get(f"/{asset}")).status_code == 200, asset
    names = [
        "index.html",
        "frame.js",
        "style.css",
        "pages.css",
        "forecasts.html",
        "retention.html",
        "spark.html",
    ]
    names += [f"pages/{p.name}" for p in (STATIC_DIR / "pages").glob("*.js")]
    for name in names:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!\$\{)", text), f"{name} names an external URL"
        assert (await client.get(f"/{name}")).status_code == 200, name
    assert 'data-testid="chart"' in (await client.get("/forecasts.html")).text
    assert (STATIC_DIR / "uPlot.LICENSE.txt").exists()


@anyio
async def test_graphiql_is_served_to_browsers(client: httpx.AsyncClient):
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


@anyio
async def test_token_settings_do_not_leak_into_config(stack: Stack):
    app = create_app(stack.services(settings=GatewaySettings(token=None)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        config = (await c.get("/api/config")).json()
    assert config["mutationsEnabled"] is False
    assert "token" not in str(config).lower()
