"""The connectors page in a real Chromium: state, task figures and lag from the status the platform
reported; pause with the token."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.gateway.conftest import TOKEN, Stack
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 (the fixture)

from sparkhu.connectors.declared import ConnectorStatus, DeclaredConnectors
from sparkhu.gateway.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def test_the_connectors_page_shows_status_and_pauses(stack: Stack, serve, browser: Any) -> None:  # noqa: F811
    declared = DeclaredConnectors(stack.catalog)
    config = {"connector.class": "sparkhu.influxdb", "influxdb.url": "http://h:1", "influxdb.db": "AMPds2",
              "measurement": "electricity"}  # fmt: skip
    declared.put("amp", config)
    task = {"id": 0, "name": "amp", "state": "RUNNING", "points": 12345, "points_per_s": 250.5,
            "watermark": "2020-12-31T15:09:00+00:00", "lag_s": 42.0, "quarantined": 3}  # fmt: skip
    declared.report("amp", 0, ConnectorStatus("RUNNING", "w:1", [task], "2026-01-01T00:00:00+00:00"))
    url = serve(create_app(stack.services()))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(url + "/")
    page.get_by_test_id("nav-connectors").click()
    row = page.get_by_test_id("connector-amp")
    row.wait_for()
    text = row.inner_text()
    for shown in ("sparkhu.influxdb", "RUNNING", "12,345", "250.5", "2020-12-31T15:09:00", "42.0", "3"):
        assert shown in text
    page.get_by_test_id("token").fill(TOKEN)
    page.get_by_test_id("token").dispatch_event("change")
    page.get_by_test_id("pause-amp").click()
    deadline = time.monotonic() + 10
    while declared.get("amp").state != "PAUSED":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page.get_by_test_id("resume-amp").wait_for()
    assert page.get_by_test_id("error").is_hidden()
    assert problems == []
