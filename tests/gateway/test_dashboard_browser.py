"""The dashboard in a real Chromium against a real gateway (uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.conftest import HORIZON, N_POINTS, SID, Stack, actual_points, forecasts

from sparkhu.gateway.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (skipped, hence failed in CI, when missing), launched
    once per module; each test opens its own page, in a browser context of its own."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def counts(page: Any) -> tuple[int, int]:
    chart = page.get_by_test_id("chart")
    return int(chart.get_attribute("data-actual-points")), int(chart.get_attribute("data-forecast-points"))


def test_dashboard_charts_actuals_and_forecasts_live(stack: Stack, serve, browser: Any, tmp_path: Path):
    url = serve(create_app(stack.services(timezone="Asia/Seoul")))
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))

    page.goto(url + "/")
    page.get_by_test_id("timezone").filter(has_text="Asia/Seoul").wait_for()
    item = page.locator(f'[data-testid="series-item"][data-series-id="{SID}"]')
    item.click()

    # both actuals and blended forecasts are charted
    page.wait_for_function(
        """() => { const c = document.querySelector('[data-testid="chart"]');
                   return +c.dataset.actualPoints > 0 && +c.dataset.forecastPoints > 0; }""",
        timeout=15_000,
    )
    assert counts(page) == (N_POINTS, HORIZON + 1)
    assert page.locator("#chart canvas").count() >= 1
    # the last actual (02:59 UTC) is shown in the display timezone (11:59 in Seoul)
    assert page.locator("#stat-actual-ts").inner_text() == "2024-03-01 11:59:00"
    assert page.get_by_test_id("run-row").count() == 1

    # live: the subscription is up, then new forecasts and points reach the chart
    page.wait_for_function(
        "() => document.querySelector('[data-testid=live-status]')?.dataset.mode === 'live'", timeout=15_000
    )
    stack.predictions.write(forecasts(SID, N_POINTS - 1, 2500.0))  # targets 180..199: 20 new
    page.wait_for_function(
        f"() => +document.querySelector('[data-testid=chart]').dataset.forecastPoints === {2 * HORIZON + 1}",
        timeout=15_000,
    )
    stack.add_points(actual_points(SID, N_POINTS, 5))
    page.wait_for_function(
        f"() => +document.querySelector('[data-testid=chart]').dataset.actualPoints === {N_POINTS + 5}",
        timeout=15_000,
    )
    assert counts(page) == (N_POINTS + 5, 2 * HORIZON + 1)
    assert page.get_by_test_id("error").is_hidden()

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert problems == []


def test_dashboard_falls_back_to_polling_without_websockets(stack: Stack, serve, browser: Any):
    url = serve(create_app(stack.services()))
    page = browser.new_page()
    page.add_init_script("delete window.WebSocket;")
    page.goto(f"{url}/?series={SID}")  # the series can be preselected by URL
    page.wait_for_function(
        "() => document.querySelector('[data-testid=live-status]')?.dataset.mode === 'polling'",
        timeout=15_000,
    )
    page.wait_for_function(
        f"() => +document.querySelector('[data-testid=chart]')?.dataset.forecastPoints === {HORIZON + 1}",
        timeout=15_000,
    )
    stack.predictions.write(forecasts(SID, N_POINTS - 1, 2500.0))
    page.wait_for_function(
        f"() => +document.querySelector('[data-testid=chart]').dataset.forecastPoints === {2 * HORIZON + 1}",
        timeout=15_000,
    )
    assert page.get_by_test_id("series-title").inner_text() == SID
