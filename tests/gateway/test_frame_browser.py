"""The dashboard's frame and the operator's pages in a real Chromium against a real gateway."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient
from tests.gateway.conftest import DATASET, N_POINTS, OTHER, SID, TOKEN, Stack, actual_points, forecasts
from tests.gateway.operator_data import DAYS, FAILED, TASKS, seed_analysis, seed_reports, seed_runs
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 (the fixture)

from sparkhu.forecast.registry import ModelRegistry, registered_name
from sparkhu.gateway.app import create_app
from sparkhu.pipeline.records import RUN_KIND, SERIES_KIND
from sparkhu.storage.catalog import RunRecord

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def watch(page: Any) -> list[str]:
    """Page errors, console errors and failed requests of ``page``."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    return problems


RERUNS: list[tuple[str, str, date]] = []


@pytest.fixture
def url(stack: Stack, serve, tmp_path: Path) -> str:
    """The gateway over the seeded stack; its re-runs record a successful task-day, as the pipeline does."""
    seed_analysis(stack)
    seed_runs(stack)
    seed_reports(tmp_path / "reports")
    RERUNS.clear()

    def rerun(dataset: str, task: str, day: date) -> str:
        RERUNS.append((dataset, task, day))
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        later = start + timedelta(days=3)
        name = f"{dataset}/{task}"
        stack.catalog.record_runs(
            [
                RunRecord(
                    f"rerun-{task}-{day}",
                    RUN_KIND,
                    name,
                    "success",
                    later,
                    interval_start=start,
                    interval_end=start + timedelta(days=1),
                ),
                RunRecord(
                    f"rerun-{task}-{day}-0",
                    SERIES_KIND,
                    name,
                    "success",
                    later,
                    series_id=OTHER,
                    interval_start=start,
                    interval_end=start + timedelta(days=1),
                ),
            ]
        )
        return "success"

    return serve(create_app(stack.services(reports=tmp_path / "reports", rerun=rerun)))


def test_the_explorer_zooms_into_finer_buckets_and_marks_what_the_pipeline_found(url: str, browser: Any):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    problems = watch(page)
    page.goto(f"{url}/#/explorer?series={SID}")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=15_000)
    chart = page.get_by_test_id("explorer-chart")
    assert chart.get_attribute("data-series") == "1"
    assert int(chart.get_attribute("data-buckets")) == N_POINTS  # 3 h of minutely points: 1m buckets
    assert (chart.get_attribute("data-anomalies"), chart.get_attribute("data-gaps")) == ("2", "3")
    assert chart.get_attribute("data-outliers") == "1"
    assert int(chart.get_attribute("data-forecast-buckets")) > 0
    assert page.locator("[data-testid=explorer-plot] canvas").count() == 1
    print(problems)
    assert problems == []


def test_zooming_fetches_finer_buckets_and_panning_moves_the_window(stack: Stack, serve, browser: Any):  # noqa: F811
    stack.add_points(actual_points(SID, N_POINTS, 7 * 24 * 60 - N_POINTS))  # one week of minutely points
    url = serve(create_app(stack.services()))
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    problems = watch(page)
    page.goto(f"{url}/#/explorer?series={SID}")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=15_000)
    chart = page.get_by_test_id("explorer-chart")
    assert chart.get_attribute("data-bucket") == "30m"  # a week in at most 600 buckets
    assert int(chart.get_attribute("data-buckets")) == 7 * 48
    plot = page.locator("[data-testid=explorer-plot] .u-over")
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.40, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.42, box["y"] + 50, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=explorer-chart]').dataset.zooms === '1'"
    )
    page.wait_for_function(
        "() => document.querySelector('[data-testid=explorer-chart]').dataset.bucket === '1m'"
    )
    start = chart.get_attribute("data-start")
    page.get_by_test_id("pan-1").click()
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=explorer-chart]').dataset.start !== '{start}'"
    )
    assert chart.get_attribute("data-start") > start
    # overlaid, then stacked: one chart per series
    page.locator(f'[data-testid=explorer-item][data-series-id="{OTHER}"] input').check()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=explorer-chart]').dataset.series === '2'"
    )
    assert page.locator("[data-testid=explorer-plot]").count() == 1
    page.get_by_test_id("mode-stacked").click()
    assert page.locator("[data-testid=explorer-plot]").count() == 2
    assert problems == []


def test_the_runs_grid_shows_tasks_by_days_filters_links_reports_and_reruns(url: str, browser: Any):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    problems = watch(page)
    page.goto(f"{url}/#/runs?days=7&until={DAYS[-1]}")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=15_000)
    grid = page.get_by_test_id("runs-grid")
    assert (grid.get_attribute("data-tasks"), grid.get_attribute("data-days")) == (str(len(TASKS)), "7")
    cells = page.get_by_test_id("grid-cell")
    assert cells.count() == len(TASKS) * len(DAYS)
    failed = page.locator("[data-testid=grid-cell][data-status=failed]")
    assert failed.count() == 1
    assert failed.get_attribute("data-task") == f"{DATASET}/{FAILED[0]}"
    assert failed.get_attribute("data-day") == FAILED[1].isoformat()
    failed.click()
    page.get_by_test_id("detail-series").filter(has_text="1 ok, 1 failed, 0 skipped").wait_for()  # on demand
    report = page.get_by_test_id("report-link")
    assert report.get_attribute("href") == f"/reports/{DATASET}/{FAILED[1]}/{FAILED[0]}.html"
    assert f"{FAILED[0]} {FAILED[1]}" in httpx.get(url + report.get_attribute("href"), timeout=10).text

    # one series on demand: SID did not fail that day
    page.get_by_test_id("runs-series").fill(SID)
    page.get_by_test_id("runs-apply").click()
    page.wait_for_function("() => !document.querySelector('[data-testid=grid-cell][data-status=failed]')")
    assert cells.count() == len(TASKS) * len(DAYS)
    page.get_by_test_id("runs-series").fill("")
    page.get_by_test_id("runs-apply").click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=grid-cell][data-status=failed]').length === 1"
    )
    page.locator("[data-testid=grid-cell][data-status=failed]").click()

    # a re-run needs the token; with it, the pipeline runs the task-day again
    page.get_by_test_id("rerun").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=rerun-result]').dataset.status === 'error'"
    )
    assert "AUTH" in page.get_by_test_id("rerun-result").inner_text()
    assert RERUNS == []
    page.get_by_test_id("token").fill(TOKEN)
    page.get_by_test_id("token").dispatch_event("change")
    page.get_by_test_id("cell-detail").get_by_test_id("rerun").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=rerun-result]').dataset.status === 'success'"
    )
    assert RERUNS == [(DATASET, FAILED[0], FAILED[1])]
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=grid-cell][data-status=failed]').length === 0"
    )

    # filters: status, task, one series
    page.get_by_test_id("runs-status").select_option("success")
    page.get_by_test_id("runs-task").fill("dedup")
    page.get_by_test_id("runs-apply").click()
    page.wait_for_function("() => document.querySelector('[data-testid=runs-grid]').dataset.tasks === '1'")
    assert cells.count() == len(DAYS)
    assert problems == []


def test_the_quality_page_charts_the_reports_and_the_correlation_heatmap(url: str, browser: Any):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    problems = watch(page)
    page.goto(f"{url}/#/quality?series={SID}")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=15_000)
    charts = page.get_by_test_id("quality-chart")
    assert charts.count() == 6
    # the reports of the 30 days up to today: the seeded 2024 days are older
    assert page.get_by_test_id("quality-charts").get_attribute("data-days") == "0"
    page.evaluate(f"() => {{ location.hash = '#/quality?series={SID}&days=7&until={DAYS[-1]}'; }}")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=15_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=quality-charts]').dataset.days === '3'"
    )
    gaps = page.locator("[data-testid=quality-chart][data-metric='missing.gaps']")
    assert gaps.get_attribute("data-points") == "3"
    assert page.locator("[data-testid=quality-chart] canvas").count() == 6
    cell = page.locator(f'[data-testid=heatmap-cell][data-a="{SID}"]')
    assert cell.get_attribute("data-pearson") == "0.87" and cell.get_attribute("data-lag") == "120"
    assert "0.87 @ 120s" in cell.inner_text()
    assert problems == []


def test_the_models_page_browses_the_registry(stack: Stack, serve, browser: Any, tmp_path: Path):  # noqa: F811
    registry = ModelRegistry(f"sqlite:///{tmp_path}/mlflow.db", artifact_root=tmp_path / "art")
    # two versions registered in MLflow as log_training registers them (without logging a model: faster)
    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    name = registered_name(SID)
    client.create_registered_model(name, tags={"sparkhu.series": SID})
    for alias, mase in (("champion", 0.8), ("challenger", 0.6)):
        run = client.create_run(registry.experiment_id)
        client.log_metric(run.info.run_id, "mase", mase)
        version = client.create_model_version(
            name, f"{tmp_path}/art", run.info.run_id, tags={"sparkhu.kind": "ses"}
        )
        client.set_registered_model_alias(name, alias, version.version)
    challenger = forecasts(SID, 150, 2800.0)
    stack.predictions.write(challenger.set_column(7, "model", pa.array(["challenger"] * challenger.num_rows)))
    url = serve(create_app(stack.services(registry=lambda: registry)))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = watch(page)
    page.goto(f"{url}/#/models?series={SID}")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=30_000)
    rows = page.get_by_test_id("model-row")
    assert rows.count() == 2
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.aliases)")) == ["challenger", "champion"]
    assert page.get_by_test_id("model-bar").count() == 2
    assert page.locator("[data-testid=model-bars] .bar.champion").count() == 1
    chart = page.get_by_test_id("model-forecasts")
    assert chart.get_attribute("data-models") == "2"  # champion (ses) and challenger overlaid
    assert page.locator("[data-testid=model-forecasts] canvas").count() == 1
    assert problems == []
