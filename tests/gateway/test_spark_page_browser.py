"""The Spark study page: a study stored in the lake, served through GraphQL, in a real Chromium."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.gateway.conftest import Stack
from tests.gateway.test_dashboard_browser import browser  # noqa: F401 (the fixture)

from sparkhu.gateway.app import create_app
from sparkhu.sparkstudy import report
from sparkhu.sparkstudy.settings import Prices, Setting
from sparkhu.sparkstudy.study import Study, _row

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def stored_study(stack: Stack) -> Study:
    """A study of three settings as the study writes it (one reported as will pend)."""
    study = Study("20260301T000000-abc123", "passwords", "udf", "/data/p.txt",
                  datetime(2026, 3, 1, tzinfo=UTC), Prices())  # fmt: skip
    for name, n, wall in (("one", 1, 40.0), ("two", 2, 22.0)):
        setting = Setting(name, 1, 512, n)
        cost = Prices().cost(wall * n, wall * n / 2)
        study.rows.append(
            _row(setting, status="ok", wall_s=wall, job_s=wall - 5, executors_max=n, pending_max=0,
                 executor_s=wall * n, vcpu_s=wall * n, gb_s=wall * n / 2, cpu_avg_pct=60.0, cpu_max_pct=95.0,
                 mem_avg_mb=300.0, mem_max_mb=350.0, task_s=30.0, gc_s=0.2, shuffle_read_mb=0.01,
                 shuffle_write_mb=0.01, cost=cost, time_x_cost=wall * cost, counts='{"strong": 7}')
        )  # fmt: skip
        study.timelines[name] = [
            {"t": 0.5, "running": 0, "wanted": n, "pending": n},
            {"t": 5.0, "running": n, "wanted": n, "pending": 0},
            {"t": wall, "running": n, "wanted": n, "pending": 0},
        ]
    study.rows.append(
        _row(
            Setting("big", 2, 512, 1),
            status="will pend",
            reason="all 1 executor(s) will pend: each asks 2 cores and 512 MB; w1 has 1 core(s) (cores short)",  # noqa: E501
        )
    )
    report.write_lake(study, stack.lake)
    return study


def test_graphql_answers_the_studies(stack: Stack, serve):
    study = stored_study(stack)
    url = serve(create_app(stack.services()))
    runs = "runs { setting status reason wallS timeXCost counts }"
    query = f"{{ sparkStudies {{ id job {runs} timelines {{ setting }} }} }}"
    body = httpx.post(f"{url}/graphql", json={"query": query}, timeout=10).json()
    [got] = body["data"]["sparkStudies"]
    assert got["id"] == study.id and got["job"] == "passwords"
    runs = {r["setting"]: r for r in got["runs"]}
    assert runs["two"]["wallS"] == 22.0 and runs["two"]["counts"] == {"strong": 7}
    assert runs["big"]["status"] == "will pend" and runs["big"]["wallS"] is None
    assert "cores short" in runs["big"]["reason"]
    assert [t["setting"] for t in got["timelines"]] == ["one", "two"]
    one = '{ sparkStudies(id: "nope") { id } }'
    assert httpx.post(f"{url}/graphql", json={"query": one}, timeout=10).json()["data"]["sparkStudies"] == []


def test_the_spark_page_shows_table_bars_and_executors(stack: Stack, serve, browser: Any, tmp_path: Path):  # noqa: F811
    stored_study(stack)
    url = serve(create_app(stack.services()))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

    page.goto(url + "/")
    page.get_by_test_id("nav-spark").click()
    page.wait_for_function("() => document.body.dataset.loaded === 'true'", timeout=15_000)
    assert "passwords (udf)" in page.get_by_test_id("study-title").inner_text()
    rows = page.locator("#study-rows tr")
    assert rows.count() == 3
    big = page.locator('#study-rows tr[data-setting="big"]')
    assert big.get_attribute("data-status") == "will pend"
    assert "cores short" in big.inner_text()
    assert page.locator('[data-testid="bars-wallS"] .bar-row').count() == 2
    assert page.locator('[data-testid="bars-timeXCost"] .bar.best').count() == 1
    assert page.get_by_test_id("executors-chart").get_attribute("data-lines") == "2"
    assert page.locator("#executors canvas").count() >= 1
    assert page.get_by_test_id("error").is_hidden()
    shot = tmp_path / "spark.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.get_by_test_id("nav-forecasts").click()  # the frame: back to the first page
    page.get_by_test_id("series-list").wait_for()
    assert problems == []
