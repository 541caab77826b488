"""The dashboard's frame and the operator's pages in a real Chromium against a real gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.gateway.conftest import DATASET, N_POINTS, SID, Stack
from tests.gateway.operator_data import DAYS, FAILED, TASKS, seed_analysis, seed_reports, seed_runs
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 (the fixture)

from sparkhu.gateway.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def watch(page: Any) -> list[str]:
    """Page errors, console errors and failed requests of ``page``."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    return problems


@pytest.fixture
def url(stack: Stack, serve, tmp_path: Path) -> str:
    seed_analysis(stack)
    seed_runs(stack)
    seed_reports(tmp_path / "reports")
    return serve(create_app(stack.services(reports=tmp_path / "reports")))


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
