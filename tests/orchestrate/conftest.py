"""Fixtures of the Airflow tests: a small sparkhu home of demo data, and Airflow in its own virtualenv.

Airflow lives in ``.venv-airflow`` (``make airflow``), apart from sparkhu's environment; the tests
drive it through ``bench/airflow_probe.py`` in a subprocess, with a SQLite metadata database in a
temporary ``AIRFLOW_HOME``. The generated tasks run this checkout's sparkhu with this Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sparkhu.cli.main import run

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_PYTHON = ROOT / ".venv-airflow" / "bin" / "python"
PROBE = ROOT / "bench" / "airflow_probe.py"
DATASET = "ampds2_electricity"
DAY = "2024-01-02"
"""The day the tests run: the second of two days of data, so look-backs find history."""
SPARKHU = f"{sys.executable} -m sparkhu.cli"
"""How the generated tasks call sparkhu in the tests: this Python, this checkout (PYTHONPATH)."""


def sparkhu(*argv: str) -> int:
    """Run the sparkhu CLI in this process; its exit status."""
    try:
        run(list(argv))
    except SystemExit as exit_info:
        return int(exit_info.code or 0)
    return 0


def clean_env() -> dict[str, str]:
    """This environment without SPARKHU_* settings and AIRFLOW_* leftovers, with this checkout's sparkhu."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKHU_", "AIRFLOW"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sparkhu home with two days (2024-01-01 and -02) of ten demo meters in the lake's raw zone."""
    from sparkhu.demo.generator import generate

    folder = tmp_path_factory.mktemp("demo")
    csv = generate(2, 10, 7, start=datetime(2024, 1, 1, tzinfo=UTC)).write_csv(folder / "Electricity_P.csv")
    home = folder / "home"
    code = sparkhu(
        "--home", str(home), "ingest", str(csv), "--source", "ampds2", "--measurement", "electricity",
        "--field-suffix", ".P",
    )  # fmt: skip
    assert code == 0
    return home


@pytest.fixture
def fresh_home(demo_home: Path, tmp_path: Path) -> Callable[[str], Path]:
    """A copy of the demo home under ``tmp_path/<name>`` (each test changes its own)."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(demo_home, tmp_path / name))

    return copy


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Airflow metadata database (SQLite), copied by :func:`airflow`."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"Airflow is not installed in {AIRFLOW_PYTHON.parent.parent}: run `make airflow`")
    home = tmp_path_factory.mktemp("airflow")
    env = {**clean_env(), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run(
        [str(AIRFLOW_PYTHON.parent / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return home / "airflow.db"


@pytest.fixture
def airflow(airflow_db: Path, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``airflow(command, dags_folder, *args)``: run the probe in Airflow's environment on a fresh
    copy of the metadata database; its JSON result."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copy(airflow_db, home / "airflow.db")

    def probe(command: str, dags: Path, *args: str) -> dict[str, Any]:
        env = {
            **clean_env(),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        }
        done = subprocess.run(
            [str(AIRFLOW_PYTHON), str(PROBE), command, str(dags), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
        assert done.returncode == 0 and lines, (done.stdout[-3000:], done.stderr[-3000:])
        result: dict[str, Any] = json.loads(lines[-1][len("PROBE ") :])
        result["log"] = done.stdout + done.stderr
        return result

    return probe
