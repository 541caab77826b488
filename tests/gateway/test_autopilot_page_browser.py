"""The autopilot page in a real Chromium: the policies in force, a policy set with the token (a bad one
refused with its field named), and a series' champion timeline from the champion history."""

from __future__ import annotations

from typing import Any

import pytest
from tests.gateway.conftest import SID, TOKEN, Stack
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 (the fixture)

from sparkhu.gateway.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def test_the_autopilot_page_sets_policies_and_draws_the_champion_timeline(
    stack: Stack,
    serve,
    browser: Any,  # noqa: F811
) -> None:
    name = "sparkhu." + SID.replace("/", ".")
    stack.catalog.record_champion(name, SID, 1, previous=None, event="train", actor="train", reason="first")
    numbers = {"points": 30, "champion_mae": 2.5, "challenger_mae": 1.25}
    stack.catalog.record_champion(
        name,
        SID,
        2,
        previous=1,
        event="promote",
        actor="controller",
        reason="beats it",
        numbers=numbers,
        action_id=1,
    )
    url = serve(create_app(stack.services()))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.goto(url + f"/#/autopilot?series={SID}")
    page.wait_for_function("document.body.dataset.ready === 'true'")
    assert "No training policy" in page.get_by_test_id("policy-rows").inner_text()
    bars = page.get_by_test_id("timeline-bar")
    assert bars.count() == 2 and bars.nth(1).get_attribute("data-event") == "promote"
    rows = page.get_by_test_id("history-row")
    assert "beats it" in rows.nth(1).inner_text() and "challenger_mae 1.25" in rows.nth(1).inner_text()
    page.get_by_test_id("token").fill(TOKEN)
    page.get_by_test_id("token").dispatch_event("change")
    page.get_by_test_id("policy-json").fill('{"name": "meters", "series": "test/*", "gate": {"margin": 2}}')
    page.get_by_test_id("policy-save").click()
    page.get_by_test_id("error").wait_for()
    assert (
        "BAD_INPUT: policy: gate.margin: Input should be less than 1"
        in page.get_by_test_id("error").inner_text()
    )
    page.get_by_test_id("policy-json").fill('{"name": "meters", "series": "test/*", "window": "7d"}')
    page.get_by_test_id("policy-save").click()
    page.get_by_test_id("policy-meters").wait_for()
    assert " 7d " in f" {page.get_by_test_id('policy-meters').inner_text()} ".replace("\t", " ")
    assert page.get_by_test_id("error").is_hidden()
    page.get_by_test_id("policy-delete-meters").click()
    page.get_by_test_id("policy-meters").wait_for(state="detached")
    assert stack.catalog.policies("training") == []
    assert problems == []
