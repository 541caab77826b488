"""Take docs/img/airflow-grid.png: Airflow's grid of the generated daily DAG after dag.test() runs.

    AIRFLOW_HOME=... AIRFLOW__CORE__DAGS_FOLDER=... python docs/img/airflow_grid.py AIRFLOW_BIN_DIR DAG_ID OUT.png

Run with sparkhu's Python (it has Playwright); Airflow's api-server runs from AIRFLOW_BIN_DIR on
the metadata database of the dag.test() runs, on a free port, and is stopped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright


def main(bin_dir: str, dag_id: str, out: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    airflow = str(Path(bin_dir) / "airflow")
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [airflow, "api-server", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(180):
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            page.goto(f"{base}/dags/{dag_id}", wait_until="networkidle", timeout=120_000)
            time.sleep(15)  # the grid loads its task instances after the page
            page.screenshot(path=out)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(*sys.argv[1:])
