"""The lineage page in a real Chromium, as a route of the frame: the series picked, its graph drawn
in stage columns from the GraphQL ``lineage`` query, a node's record shown on click."""

from __future__ import annotations

from typing import Any

import pytest
from tests.gateway.conftest import SID, Stack
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 (the fixture)

from sparkhu.gateway.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def test_the_lineage_page_draws_the_graph_of_a_series(stack: Stack, serve, browser: Any) -> None:  # noqa: F811
    url = serve(create_app(stack.services()))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(url + "/lineage.html")  # an old link lands on the route
    page.wait_for_function("location.hash.startsWith('#/lineage')")
    page.get_by_test_id("lineage-series").fill(SID)
    page.get_by_test_id("lineage-form").evaluate("f => f.requestSubmit()")
    page.wait_for_function("document.body.dataset.ready === 'true'")
    page.wait_for_function("location.hash.includes('series=')")  # the route keeps the series
    series = page.get_by_test_id("stage-series")
    assert SID in series.inner_text()
    assert "raw/ampds2_electricity" in page.get_by_test_id("stage-dataset").inner_text()
    nodes = page.get_by_test_id("lineage-node")
    assert nodes.count() >= 2
    series.get_by_test_id("lineage-node").first.click()
    page.wait_for_function("document.querySelector('.selected') !== null")
    assert page.get_by_test_id("error").first.is_hidden()
    assert problems == []
