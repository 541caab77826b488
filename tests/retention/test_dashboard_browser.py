"""The dashboard's retention page in a real Chromium against a real gateway: edit both policies as the
original page did (numbers only, start date not in the future), then see the plan, storage and audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.gateway.conftest import serve  # noqa: F401 - the uvicorn fixture
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 - the Chromium fixture
from tests.retention.conftest import DATASET, mark_processed, minutely

from sparkhu.config import GatewaySettings
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices
from sparkhu.retention.policies import policies
from sparkhu.storage.predictions import PredictionStore

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_retention_page_edits_both_policies_and_shows_plan_storage_audit(ctx, serve, browser: Any):  # noqa: F811
    now = datetime.now(UTC)
    ctx.clock = lambda: int(now.timestamp() * 1_000_000)
    ctx.lake.write("raw", DATASET, minutely(now - timedelta(days=70), 10, every_s=3600))
    mark_processed(ctx.catalog, DATASET, (now - timedelta(days=71)).date(), now.date())
    services = GatewayServices(
        ctx.lake,
        ctx.catalog,
        PredictionStore(ctx.catalog.engine),
        settings=GatewaySettings(token=None),
        retention=ctx,
    )
    url = serve(create_app(services))
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(  # a reload aborts the page's periodic refreshes in flight: not a failure
        "requestfailed",
        lambda req: (
            None if "ERR_ABORTED" in (req.failure or "") else problems.append(f"request failed: {req.url}")
        ),
    )

    page.goto(url + "/")
    page.get_by_test_id("nav-retention").click()
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_by_test_id("backup-current").inner_text() == "current: no policy"
    assert page.get_by_test_id("disposal-current").inner_text() == "current: no policy"
    assert page.get_by_test_id("plan-totals").get_attribute("data-items") == "0"

    # numbers only, start date not in the future — refused on the page, nothing sent
    page.get_by_test_id("backup-months-mode").check()
    page.get_by_test_id("backup-months").fill("1.5")
    page.get_by_test_id("backup-save").click()
    assert "numbers only" in page.get_by_test_id("backup-error").inner_text()
    page.get_by_test_id("backup-months").fill("1")
    page.get_by_test_id("backup-start").fill((now + timedelta(days=3)).date().isoformat())
    page.get_by_test_id("backup-save").click()
    assert "must not be in the future" in page.get_by_test_id("backup-error").inner_text()
    assert not any(p.name == "backup" for p in policies(ctx))

    start = (now - timedelta(days=400)).date().isoformat()
    page.get_by_test_id("backup-start").fill(start)
    page.get_by_test_id("backup-save").click()
    page.wait_for_function(
        "s => document.querySelector('[data-testid=backup-current]').textContent === s",
        arg=f"current: 1 months, from {start}",
    )
    assert page.get_by_test_id("backup-error").inner_text() == ""
    # the change ran retention at once: archived, and the audit and storage say so
    page.wait_for_selector("[data-testid=audit-row][data-action=archive]")
    assert page.locator("[data-testid=storage-row][data-target=archive]").count() == 1
    archive_row = page.locator("[data-testid=storage-row][data-target=archive] td").nth(3).inner_text()
    assert archive_row.replace(",", "") == str(10 * 24 * 3)

    page.get_by_test_id("disposal-months-mode").check()
    page.get_by_test_id("disposal-months").fill("2")
    page.get_by_test_id("disposal-save").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=disposal-current]').textContent === 'current: 2 months'"
    )
    by_name = {p.name: p for p in policies(ctx)}
    assert (by_name["backup"].keep_months, by_name["backup"].start_date) == (1, start)
    assert (by_name["disposal"].target, by_name["disposal"].keep_months) == ("archive", 2)

    # a reload shows what was saved; the plan is a dry run with its rows
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_by_test_id("backup-months").input_value() == "1"
    assert page.get_by_test_id("backup-start").input_value() == start
    assert page.get_by_test_id("plan-table").is_visible()
    page.get_by_test_id("disposal-none").check()
    page.get_by_test_id("disposal-save").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=disposal-current]').textContent === 'current: no policy'"
    )
    assert page.get_by_test_id("error").is_hidden()
    assert problems == []
