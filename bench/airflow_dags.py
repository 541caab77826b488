"""The generated Airflow DAGs: parse time per file, and what running a day through Airflow costs.

Setup: a sparkhu home with two days of ten demo meters (the tests' data), the DAG files of
``sparkhu airflow dags`` (per task, and per task group), Airflow 3 from ``.venv-airflow``
(``make airflow``) on a SQLite metadata database. Everything Airflow-side runs in
``bench/airflow_probe.py`` inside Airflow's environment.

* **parse** — seconds for Airflow's ``DagBag`` to import each generated file (Airflow itself
  already imported, as in its DAG processor); target <= 1 s per file.
* **run a day** — wall seconds of ``dag.test()`` of the daily DAG for one day against
  ``sparkhu pipeline run --day`` of the same day on a copy of the same home, measured A/B/B/A in
  the same run; peer = ``sparkhu pipeline run``, ratio = its time / Airflow's (< 1: Airflow's
  overhead: a scheduler round and a sparkhu process per task).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import Result
from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.orchestrate.generate import generate

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = ROOT / ".venv-airflow" / "bin"
PROBE = ROOT / "bench" / "airflow_probe.py"
DATASET, DAY, LOGICAL_DATE = "ampds2_electricity", "2024-01-02", "2024-01-03T00:10:00+00:00"
BENCH = "airflow"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKHU_", "AIRFLOW"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return {**env, **extra}


def _sparkhu(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "sparkhu.cli", *argv], env=_env(), check=True, capture_output=True)


def _probe(airflow_home: Path, dags: Path, *args: str) -> dict:
    env = _env(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
    )
    done = subprocess.run(
        [str(AIRFLOW / "python"), str(PROBE), *args], env=env, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    if done.returncode or not lines:
        raise RuntimeError(f"airflow probe failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1][len("PROBE ") :])


def run(scale: float) -> list[Result]:
    if not (AIRFLOW / "python").exists():
        return [Result(BENCH, "skipped", 0, "", detail="Airflow is not installed: run `make airflow`")]
    from sparkhu.demo.generator import generate as demo_data

    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-airflow-") as tmp:
        root = Path(tmp)
        csv = demo_data(2, 10, 7, start=datetime(2024, 1, 1, tzinfo=UTC)).write_csv(
            root / "Electricity_P.csv"
        )
        base = root / "home"
        names = ("--source", "ampds2", "--measurement", "electricity", "--field-suffix", ".P")
        _sparkhu("--home", str(base), "ingest", str(csv), *names)
        db_home = root / "airflow-db"
        db_home.mkdir()
        subprocess.run([str(AIRFLOW / "airflow"), "db", "migrate"], env=_env(AIRFLOW_HOME=str(db_home)),
                       check=True, capture_output=True)  # fmt: skip
        rounds = {"n": 0}

        def fresh(kind: str) -> tuple[Path, Path]:
            rounds["n"] += 1
            home = Path(shutil.copytree(base, root / f"{kind}-{rounds['n']}" / "home"))
            af = home.parent / "airflow"
            af.mkdir()
            shutil.copy(db_home / "airflow.db", af / "airflow.db")
            return home, af

        def dags_for(home: Path, group_by: str) -> Path:
            out = home.parent / "dags"
            settings = Settings.load(toml_path=None, env={}, overrides={"home": str(home)})
            with Runtime(settings) as runtime:
                generate(runtime, out, builders=["pipeline"], group_by=group_by,  # type: ignore[arg-type]
                         sparkhu=f"{sys.executable} -m sparkhu.cli")  # fmt: skip
            return out

        results = []
        home, af = fresh("parse")
        parse_dir = root / "parse-dags"
        for group_by in ("task", "task-group"):
            shutil.copytree(dags_for(home, group_by), parse_dir / group_by)
        parsed = [_probe(af, parse_dir / g, "parse", str(parse_dir / g)) for g in ("task", "task-group")]
        seconds = [f["seconds"] for p in parsed for f in p["files"].values()]
        errors = sum(len(f["errors"]) for p in parsed for f in p["files"].values())
        results.append(
            Result(
                BENCH,
                "DAG file parse (max)",
                max(seconds),
                "s/file",
                "<= 1 s",
                max(seconds) <= 1.0,
                f"{len(seconds)} files, median {statistics.median(seconds) * 1000:.0f} ms, {errors} import "
                f"errors; Airflow's own import {parsed[0]['import_s']:.1f} s once per process",
            )
        )
        for group_by, tasks in (("task", 13), ("task-group", 4)):
            airflow_s: list[float] = []

            def by_airflow(group_by: str = group_by, airflow_s: list[float] = airflow_s) -> None:
                home, af = fresh("airflow")
                out = dags_for(home, group_by)
                ran = _probe(af, out, "test", str(out), f"sparkhu_{DATASET}_pipeline", LOGICAL_DATE)
                if ran.get("state") != "success":
                    raise RuntimeError(f"dag.test failed: {ran}")
                airflow_s.append(ran["seconds"])

            def by_sparkhu() -> None:
                home, _ = fresh("cli")
                _sparkhu("--home", str(home), "pipeline", "run", "--day", DAY)

            started = time.perf_counter()
            _, peer_s = _interleaved_seconds(by_airflow, by_sparkhu)
            ours_s = statistics.median(airflow_s)
            results.append(
                Result(
                    BENCH,
                    f"dag.test() of a day, one task per {group_by.replace('-', ' ')}",
                    ours_s,
                    "s",
                    detail=f"{tasks} Airflow tasks = {tasks} sparkhu processes; "
                    f"bench {time.perf_counter() - started:.0f} s",
                    peer="sparkhu pipeline run",
                    ratio=peer_s / ours_s,
                )
            )
        return results


def _interleaved_seconds(ours, peer) -> tuple[float, float]:
    from bench import interleaved

    return interleaved(ours, peer, rounds=1)
