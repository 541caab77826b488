"""The operator's GraphQL over the real stack: time buckets, marks, the runs grid, reports,
correlations, model versions, the token-guarded re-run, GraphiQL served offline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest
from tests.gateway.conftest import DATASET, N_POINTS, OTHER, SID, TOKEN, Stack, error_code, gql, minutes
from tests.gateway.operator_data import DAYS, FAILED, TASKS, seed_analysis, seed_reports, seed_runs

from sparkhu.config import GatewaySettings
from sparkhu.gateway.app import STATIC_DIR, create_app

anyio = pytest.mark.anyio

BUCKETS = """query($id: String!, $bucket: String!, $start: DateTime, $end: DateTime) {
  pointBuckets(seriesId: $id, bucket: $bucket, start: $start, end: $end) {
    bucket buckets ts min max mean last count } }"""


@pytest.fixture
async def client(stack: Stack, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    seed_analysis(stack)
    seed_runs(stack)
    seed_reports(tmp_path / "reports")
    app = create_app(stack.services(reports=tmp_path / "reports"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        yield c


@anyio
async def test_point_buckets_aggregate_min_max_mean_last_count(client: httpx.AsyncClient):
    body = await gql(client, BUCKETS, {"id": SID, "bucket": "5m"})
    b = body["data"]["pointBuckets"]
    values = 1000.0 + np.arange(N_POINTS)  # value = 1000 + minute
    assert b["buckets"] == N_POINTS // 5 == len(b["ts"])
    assert b["ts"][:2] == ["2024-03-01T00:00:00Z", "2024-03-01T00:05:00Z"]
    assert b["min"][1] == values[5] and b["max"][1] == values[9] and b["last"][1] == values[9]
    assert b["mean"][1] == pytest.approx(values[5:10].mean()) and set(b["count"]) == {5}
    part = await gql(
        client,
        BUCKETS,
        {"id": SID, "bucket": "1h", "start": minutes(30).isoformat(), "end": minutes(90).isoformat()},
    )
    assert part["data"]["pointBuckets"]["count"] == [30, 30]


@anyio
async def test_point_buckets_equal_the_hand_written_duckdb_query(stack: Stack, client: httpx.AsyncClient):
    files = stack.lake.files("raw", DATASET)
    hand = duckdb.sql(
        "SELECT min(value) AS mn, max(value) AS mx, avg(value) AS mean, count(*) AS n FROM read_parquet($f) "
        "WHERE series_id = $s GROUP BY epoch_us(ts) // 900000000 ORDER BY 1",
        params={"f": files, "s": SID},
    ).fetchall()
    b = (await gql(client, BUCKETS, {"id": SID, "bucket": "15m"}))["data"]["pointBuckets"]
    assert list(zip(b["min"], b["max"], b["mean"], b["count"], strict=True)) == [tuple(row) for row in hand]


@anyio
@pytest.mark.parametrize(
    ("bucket", "code", "words"),
    [
        ("5x", "BAD_INPUT", "bucket"),
        ("10ms", "BAD_INPUT", "at least 1s"),
        ("1s", "LIMIT_EXCEEDED", "buckets of 1s"),
    ],
)
async def test_bad_or_too_many_buckets_are_refused_with_a_message(
    stack: Stack, bucket: str, code: str, words: str
):
    app = create_app(stack.services(settings=GatewaySettings(token=TOKEN, max_points=1000)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        body = await gql(c, BUCKETS, {"id": SID, "bucket": bucket})
    assert error_code(body) == code and words in body["errors"][0]["message"]


@anyio
async def test_forecast_buckets_anomalies_gaps_outliers_and_annotations(client: httpx.AsyncClient):
    query = """query($id: String!) {
      forecastBuckets(seriesId: $id, bucket: "10m") { ts mean count }
      anomalies(seriesId: $id) { ts score method }
      gaps(seriesId: $id) { ts slots }
      outliers(seriesId: $id) { ts value upper }
      annotations(seriesId: $id) { ts kind label status } }"""
    data = (await gql(client, query, {"id": SID}))["data"]
    assert sum(data["forecastBuckets"]["count"]) == 21  # targets 120..140 min, blended once each
    assert [a["score"] for a in data["anomalies"]] == [6.1, 5.2]
    assert [g["slots"] for g in data["gaps"]] == [3, 3, 3]
    assert data["outliers"][0]["value"] == 1200.0
    pipeline = [a for a in data["annotations"] if a["kind"] == "pipeline"]
    assert len(pipeline) == len(DAYS)
    assert sorted(a["status"] for a in pipeline) == ["failed", "success", "success"]


@anyio
async def test_run_grid_is_tasks_by_days_with_series_counts_and_report_links(client: httpx.AsyncClient):
    query = """query($until: Date!, $series: String, $status: String) {
      runGrid(days: 5, until: $until, seriesId: $series, status: $status, seriesCounts: true) {
        days tasks cells { task day status seriesSuccess seriesFailed report runId } } }"""
    grid = (await gql(client, query, {"until": DAYS[-1].isoformat()}))["data"]["runGrid"]
    assert len(grid["days"]) == 5 and grid["days"][-1] == DAYS[-1].isoformat()
    assert grid["tasks"] == sorted(f"{DATASET}/{t}" for t in TASKS)
    assert len(grid["cells"]) == len(TASKS) * len(DAYS)
    [bad] = [c for c in grid["cells"] if c["status"] == "failed"]
    assert (bad["task"], bad["day"]) == (f"{DATASET}/{FAILED[0]}", FAILED[1].isoformat())
    assert (bad["seriesSuccess"], bad["seriesFailed"]) == (1, 1)
    assert bad["report"] == f"/reports/{DATASET}/{FAILED[1]}/{FAILED[0]}.html"
    assert (await client.get(bad["report"])).status_code == 200
    mine = (await gql(client, query, {"until": DAYS[-1].isoformat(), "series": SID}))["data"]["runGrid"]
    assert {c["status"] for c in mine["cells"]} == {"success"}
    failed = (await gql(client, query, {"until": DAYS[-1].isoformat(), "status": "failed"}))["data"][
        "runGrid"
    ]
    assert len(failed["cells"]) == 1
    body = await gql(client, "{ runGrid(days: 400) { days } }")
    assert error_code(body) == "BAD_INPUT"


@anyio
async def test_rerun_needs_the_token_and_a_pipeline(client: httpx.AsyncClient):
    mutation = 'mutation { rerunTaskDay(name: "ampds2_electricity/dedup", day: "2024-02-29") { status } }'
    assert error_code(await gql(client, mutation)) == "UNAUTHENTICATED"
    body = await gql(client, mutation, headers={"authorization": f"Bearer {TOKEN}"})
    assert error_code(body) == "BAD_INPUT" and "re-runs are off" in body["errors"][0]["message"]


@anyio
async def test_quality_reports_correlations_and_model_versions(stack: Stack, client: httpx.AsyncClient):
    query = """query($id: String!, $until: Date!) {
      qualityReports(seriesId: $id, days: 7, until: $until) { day task status figures }
      correlations(dataset: "ampds2_electricity") { seriesA seriesB lagS pearson n }
      modelVersions(seriesId: $id) { name version aliases metrics } }"""
    stack.catalog.register_model("sparkhu.ampds2.electricity.WHE.P", "1", SID, "models:/x/1", {"mase": 0.7})
    data = (await gql(client, query, {"id": SID, "until": DAYS[-1].isoformat()}))["data"]
    reports = data["qualityReports"]
    assert len(reports) == 5 * len(DAYS)
    gaps = [r["figures"]["gaps"] for r in reports if r["task"] == "missing"]
    assert gaps == [0, 1, 2]
    assert data["correlations"] == [
        {"seriesA": SID, "seriesB": OTHER, "lagS": 120.0, "pearson": 0.87, "n": 180}
    ]
    assert data["modelVersions"] == [
        {"name": "sparkhu.ampds2.electricity.WHE.P", "version": "1", "aliases": [], "metrics": {"mase": 0.7}}
    ]
    missing = await gql(client, '{ correlations(dataset: "nope") { pearson } }')
    assert (
        error_code(missing) == "NOT_FOUND"
        and "correlation task has not run" in missing["errors"][0]["message"]
    )


@anyio
async def test_graphiql_is_served_from_vendored_assets(client: httpx.AsyncClient):
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "/graphiql/graphiql.min.js" in page.text
    for src in (
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ):
        assert (await client.get(f"/graphiql/{src}")).status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    assert (STATIC_DIR / "graphiql" / "graphiql.LICENSE.txt").exists()


@pytest.mark.slow
def test_rerun_runs_one_task_day_of_the_pipeline_and_the_grid_shows_it(tmp_path: Path):
    from sparkhu.app.runtime import Runtime
    from sparkhu.cli.main import run
    from sparkhu.config import Settings
    from sparkhu.demo.generator import generate
    from sparkhu.gateway import operator as op
    from sparkhu.gateway.services import GatewayServices

    csv = generate(2, 10, 7, start=datetime(2024, 1, 1, tzinfo=UTC)).write_csv(tmp_path / "Electricity_P.csv")
    home = tmp_path / "home"
    argv = ["--home", str(home), "ingest", str(csv), "--source", "ampds2", "--measurement", "electricity"]
    try:
        run([*argv, "--field-suffix", ".P"])  # returns on success
    except SystemExit as done:
        assert done.code in (0, None)
    settings = Settings.load(toml_path=None, env={}, overrides={"home": str(home)})
    with Runtime(settings) as runtime:
        services = GatewayServices.of(runtime)
        day = date(2024, 1, 2)
        assert op.rerun(services, f"{DATASET}/validate", day, "test") == "success"
        grid = op.run_grid(services, days=2, until=day, series_counts=True)
        [cell] = grid.cells
        assert (cell.task, cell.day, cell.status) == (f"{DATASET}/validate", day, "success")
        assert sum(cell.series.values()) >= 10 and cell.series.get("failed", 0) == 0
        assert runtime.catalog.audit_log(limit=1)[0]["action"] == "rerun_task_day"
