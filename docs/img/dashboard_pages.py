"""Take docs/img/dashboard-*.png: each page of the dashboard over the browser tests' seeded data.

    PYTHONPATH=src:. python docs/img/dashboard_pages.py [OUT_DIR]

A real gateway (uvicorn on a free port) over a SQLite catalog, a lake, a prediction store and an
MLflow registry in a temporary directory, seeded as ``tests/gateway`` seeds them (one week of
minutely points, runs of 3 tasks × 3 days, anomalies, gaps, reports, correlations, two model
versions), photographed in Debian's Chromium.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import uvicorn
from playwright.sync_api import sync_playwright
from tests.gateway.conftest import OTHER, SID, Stack, actual_points, forecasts
from tests.gateway.operator_data import DAYS, seed_analysis, seed_reports, seed_runs

from sparkhu.forecast.models import make_model
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.gateway.app import create_app
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore

PAGES = {
    "forecasts": f"#/forecasts?series={SID}",
    "explorer": f"#/explorer?series={SID}&series={OTHER}",
    "runs": f"#/runs?days=14&until={DAYS[-1]}",
    "quality": f"#/quality?series={SID}&days=7&until={DAYS[-1]}",
    "models": f"#/models?series={SID}",
}


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
        stack = Stack(Lake((root / "lake").as_uri()), catalog, PredictionStore(catalog.engine, alpha=0.6))
        catalog.upsert_series(SeriesInfo.of(SID, unit="W", period_s=60.0, regular=True))
        catalog.upsert_series(SeriesInfo.of(OTHER, unit="W", period_s=60.0, regular=True))
        week = 7 * 1440
        stack.add_points(actual_points(SID, 0, week))
        other = actual_points(OTHER, 0, week)
        stack.add_points(other.set_column(2, "value", pa.array(600 + 200 * np.sin(np.arange(week) / 90.0))))
        stack.predictions.write(forecasts(SID, week - 1, 1000.0 + week))
        seed_analysis(stack)
        seed_runs(stack)
        seed_reports(root / "reports")
        registry = ModelRegistry(
            f"sqlite:///{root / 'mlflow.db'}", artifact_root=root / "art", catalog=catalog
        )
        y = 100.0 + 10.0 * np.sin(np.arange(60) / 5.0)
        registry.log_training(
            SID, make_model("ses", alpha=0.5).fit(y), metrics={"mase": 0.8}, alias="champion"
        )
        registry.log_training(
            SID, make_model("ses", alpha=0.9).fit(y), metrics={"mase": 0.6}, alias="challenger"
        )
        services = stack.services(reports=root / "reports", registry=lambda: registry)
        server = uvicorn.Server(
            uvicorn.Config(create_app(services), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
                )
                for name, route in PAGES.items():
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.goto(f"{url}/{route}")
                    if name == "forecasts":
                        page.wait_for_function(
                            "() => +document.querySelector('[data-testid=chart]').dataset.actualPoints > 0"
                        )
                    else:
                        page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=30_000)
                    if name == "runs":
                        page.locator("[data-testid=grid-cell][data-status=failed]").click()
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(out / f"dashboard-{name}.png"), full_page=True)
                    page.close()
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            catalog.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
