"""The lineage of the demo, end to end: from the source to the forecasts, through the CLI, GraphQL and
OpenLineage events (validated against the OpenLineage schema, sent to a file and to an HTTP endpoint)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar
from urllib.parse import urlparse

import anyio
import httpx
import jsonschema
import pytest
from tests.gateway.conftest import serve  # noqa: F401 - the uvicorn fixture
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 - the Chromium fixture
from tests.metadata.conftest import SERIES, DemoHome, sparkhu

from sparkhu.app.metadata import openlineage_events, series_lineage
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices

pytestmark = pytest.mark.slow

RAW = "raw/ampds2_electricity"
DAG = "ampds2_electricity"


def test_demo_lineage_runs_from_source_to_forecasts(demo_home: DemoHome):
    with demo_home.runtime() as runtime:
        runtime.catalog.audit("cli", "delete", f"{RAW}/date=2000-01-01", {"rows": 0})  # as retention audits
        graph = series_lineage(runtime, SERIES)
        lake_parts = {p.key: (p.rows, p.bytes) for p in runtime.lake.partitions("raw", "ampds2_electricity")}
        recorded = runtime.catalog.list_partitions("raw", "ampds2_electricity")
    kinds = {n.kind for n in graph.nodes}
    assert kinds == {
        "series",
        "source",
        "topic",
        "dataset",
        "task",
        "train",
        "model",
        "forecast",
        "retention",
    }
    edges = {(e.source, e.target, e.relation) for e in graph.edges}
    assert ("source:ampds2", "topic:sparkhu.ampds2.electricity", "publishes") in edges
    assert ("topic:sparkhu.ampds2.electricity", f"dataset:{RAW}", "lands") in edges
    assert (f"dataset:{RAW}", f"task:{DAG}/validate", "reads") in edges
    assert (f"task:{DAG}/validate", "dataset:validated/ampds2_electricity", "writes") in edges
    assert (f"task:{DAG}/handle", "dataset:clean/ampds2_electricity", "writes") in edges
    [train] = graph.of_kind("train")
    [model] = graph.of_kind("model")
    [forecast] = graph.of_kind("forecast")
    assert ("dataset:clean/ampds2_electricity", train.id, "reads") in edges
    assert (train.id, model.id, "registers") in edges
    assert (model.id, forecast.id, "forecasts") in edges
    assert (f"dataset:{RAW}", graph.of_kind("retention")[0].id, "retains") in edges
    # every step of the chain is connected to the series' raw dataset, walking the edges forward
    reach, frontier = {"source:ampds2"}, ["source:ampds2"]
    while frontier:
        nxt = [t for s, t, _ in edges if s in frontier and t not in reach]
        reach.update(nxt)
        frontier = nxt
    assert {model.id, forecast.id, train.id} <= reach
    # the records behind it: partitions as on disk, written by the history's ingest; task statuses
    assert {p["key"]: (p["rows"], p["bytes"]) for p in recorded} == lake_parts
    assert {p["run_id"] for p in recorded} == {"ingest:demo:history"}
    raw = next(n for n in graph.nodes if n.id == f"dataset:{RAW}")
    assert raw.detail["rows"] == sum(rows for rows, _ in lake_parts.values())
    validate = next(n for n in graph.nodes if n.id == f"task:{DAG}/validate")
    assert validate.detail["status"] == validate.detail["series_status"] == "success"
    assert model.detail["feature_view"] == "house" and model.detail["feature_view_version"] == 1
    assert forecast.detail["rows"] == 10


def test_openlineage_events_follow_the_schema(demo_home: DemoHome, run_event_schema: dict[str, Any]):
    with demo_home.runtime() as runtime:
        graphs = [series_lineage(runtime, sid) for sid in [SERIES, *demo_home.series[:2]]]
        events = openlineage_events(runtime, graphs)
    validator = jsonschema.Draft202012Validator(run_event_schema, format_checker=jsonschema.FormatChecker())
    for event in events:
        validator.validate(event)
        uuid.UUID(event["run"]["runId"])
        datetime.fromisoformat(event["eventTime"])
        assert urlparse(event["producer"]).scheme == "urn"
    jobs = [e["job"]["name"] for e in events]
    assert len(jobs) == len(set(jobs))  # one event per run, however many series share it
    assert {"source:ampds2", "sink:sparkhu.ampds2.electricity", f"{DAG}/validate", "train_series"} <= set(
        jobs
    )
    validate = next(e for e in events if e["job"]["name"] == f"{DAG}/validate")
    assert [d["name"] for d in validate["inputs"]] == [RAW]
    assert [d["name"] for d in validate["outputs"]] == ["validated/ampds2_electricity"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**events[0], "eventType": "DONE"})


def test_each_job_run_sends_start_then_complete_or_fail(
    demo_home: DemoHome, run_event_schema: dict[str, Any]
):
    from sparkhu.app.metadata import job_lineage, lake_dataset

    validator = jsonschema.Draft202012Validator(run_event_schema, format_checker=jsonschema.FormatChecker())
    with demo_home.runtime() as runtime, pytest.raises(ValueError, match="a broken job"):
        with job_lineage(runtime, "broken", inputs=[lake_dataset(runtime, RAW)]):
            raise ValueError("a broken job")
    sent = [json.loads(line) for line in demo_home.events.read_text().splitlines()]
    runs: dict[str, list[dict[str, Any]]] = {}
    for event in sent:
        validator.validate(event)
        runs.setdefault(event["run"]["runId"], []).append(event)
    for events in runs.values():  # START first, then how it ended, one job per run
        assert [e["eventType"] for e in events] in (["START", "COMPLETE"], ["START", "FAIL"])
        assert len({e["job"]["name"] for e in events}) == 1
        assert events[0]["eventTime"] <= events[1]["eventTime"]
    ended = {events[0]["job"]["name"]: events[-1] for events in runs.values()}
    assert ended["broken"]["eventType"] == "FAIL"
    assert "a broken job" in ended["broken"]["run"]["facets"]["sparkhu"]["error"]
    assert [d["name"] for d in ended["ingest:demo:history"]["outputs"]] == [RAW]
    validate = ended[f"{DAG}/validate"]
    assert validate["eventType"] == "COMPLETE"
    assert [d["name"] for d in validate["inputs"]] == [RAW]
    assert [d["name"] for d in validate["outputs"]] == ["validated/ampds2_electricity"]
    train = ended["train_series"]
    assert [d["name"] for d in train["inputs"]] == ["clean/ampds2_electricity"]
    assert "sparkhu.ampds2.electricity.WHE.P/1" in [d["name"] for d in train["outputs"]]
    with demo_home.runtime() as runtime:
        [record] = runtime.catalog.runs(kind="train")
    assert train["run"]["facets"]["sparkhu"]["run_id"] == record.run_id  # the catalog's run


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_lineage_cli_prints_the_graph_and_sends_events(demo_home: DemoHome, capsys, tmp_path, monkeypatch):
    home = ["--home", str(demo_home.settings.home)]
    monkeypatch.setenv("SPARKHU_STORAGE__CATALOG", demo_home.settings.storage.catalog)
    monkeypatch.setenv("SPARKHU_STORAGE__LAKE", demo_home.settings.storage.lake)
    monkeypatch.setenv("SPARKHU_BUS__URI", demo_home.settings.bus.uri)
    code, out, err = sparkhu(capsys, *home, "lineage", SERIES)
    assert code == 0, err
    assert (
        "source    ampds2" in out
        and f"task      {DAG}/validate" in out
        and "forecast  seasonal_naive@v1" in out
    )
    code, out, _ = sparkhu(capsys, *home, "lineage", SERIES, "--json")
    assert json.loads(out)["series_id"] == SERIES

    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("SPARKHU_METADATA__OPENLINEAGE", str(events_file))
    code, out, err = sparkhu(capsys, *home, "lineage", SERIES, "--emit")
    assert code == 0, err
    sent = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert sent and f"sent {len(sent)} OpenLineage event(s)" in out

    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv(
            "SPARKHU_METADATA__OPENLINEAGE", f"http://127.0.0.1:{server.server_port}/api/v1/lineage"
        )
        code, _, err = sparkhu(capsys, *home, "lineage", SERIES, "--emit")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert code == 0, err
    assert [e["job"]["name"] for e in _Collector.received] == [e["job"]["name"] for e in sent]

    monkeypatch.setenv("SPARKHU_METADATA__OPENLINEAGE", "http://127.0.0.1:1/api/v1/lineage")
    code, _, err = sparkhu(capsys, *home, "lineage", SERIES, "--emit")
    assert code == 2 and "cannot reach http://127.0.0.1:1/api/v1/lineage" in err
    code, _, err = sparkhu(capsys, *home, "lineage", "ampds2/electricity/NOPE")
    assert code == 2 and "'ampds2/electricity/NOPE' is not in the catalog" in err

    for command in (
        ["meta", "sources"],
        ["meta", "datasets"],
        ["meta", "partitions", "raw", "ampds2_electricity"],
    ):
        code, out, err = sparkhu(capsys, *home, *command)
        assert code == 0, err
    code, out, _ = sparkhu(capsys, *home, "feature-views", "describe", "house")
    assert code == 0 and "trained on it: sparkhu.ampds2.electricity.WHE.P v1" in out


def test_lineage_through_graphql(demo_home: DemoHome):
    query = """query($id: String!) {
      lineage(seriesId: $id) { seriesId nodes { id kind detail } edges { source target relation } }
      featureViews { name version definition } }"""

    async def ask(app: Any, series_id: str) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answer = await client.post("/graphql", json={"query": query, "variables": {"id": series_id}})
            return dict(answer.json())

    with demo_home.runtime() as runtime:
        app = create_app(GatewayServices.of(runtime))
        body = anyio.run(ask, app, SERIES)
        missing = anyio.run(ask, app, "a/b/c")
    assert "errors" not in body, body
    lineage = body["data"]["lineage"]
    assert {"source", "task", "model", "forecast"} <= {n["kind"] for n in lineage["nodes"]}
    assert {
        "source": "source:ampds2",
        "target": "topic:sparkhu.ampds2.electricity",
        "relation": "publishes",
    } in lineage["edges"]
    assert body["data"]["featureViews"][0]["definition"]["window"] == 720
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_lineage_page_draws_the_stages(demo_home: DemoHome, serve, browser: Any):  # noqa: F811
    with demo_home.runtime() as runtime:
        url = serve(create_app(GatewayServices.of(runtime)))
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.goto(url + "/")
        page.get_by_test_id("nav-lineage").click()
        page.wait_for_selector("body[data-ready=true]")
        page.get_by_test_id("lineage-series").fill(SERIES)
        page.get_by_test_id("lineage-show").click()
        page.wait_for_selector("[data-testid=stage-forecast]")
        stages = [el.get_attribute("data-testid") for el in page.query_selector_all(".stage")]
        assert stages[:4] == ["stage-source", "stage-topic", "stage-dataset", "stage-task"]
        assert {"stage-train", "stage-model", "stage-forecast"} <= set(stages)
        page.locator("[data-testid=stage-model] [data-testid=lineage-node]").first.click()
        detail = page.get_by_test_id("lineage-detail").inner_text()
        assert '"feature_view": "house"' in detail and "registers" in detail
        page.get_by_test_id("lineage-series").fill("nope/x/y")
        page.get_by_test_id("lineage-show").click()
        page.wait_for_selector("[data-testid=error]:not([hidden])")
        assert "not in the catalog" in page.get_by_test_id("error").inner_text()
        assert problems == []
