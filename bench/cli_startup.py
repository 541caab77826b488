"""CLI start-up: wall seconds of ``sparkhu --help`` in a fresh process.

Peers, measured in the same run (A/B/B/A, medians):

* ``python -c pass`` — the interpreter alone, the floor any Python CLI stands on;
* the same ``--help`` with the application imported eagerly (what the CLI did before its
  commands imported their layers lazily: the app, gateway and Spark-study modules at start-up);
* ``airflow --help`` from ``.venv-airflow`` when it is there (the CLI operators compare with).

Target: ``sparkhu --help`` <= 1 s on this 2-core machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench import Result, interleaved

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
HELP = [sys.executable, "-m", "sparkhu.cli", "--help"]
EAGER = [
    sys.executable,
    "-c",
    "import sparkhu.app.assembly, sparkhu.app.retention, sparkhu.gateway.serve, sparkhu.sparkstudy.study\n"
    "from sparkhu.cli.main import run\n"
    "run(['--help'])",
]
BARE = [sys.executable, "-c", "pass"]


def _runner(argv: list[str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=300)

    return run


def run(scale: float = 1.0) -> list[Result]:
    """Three rows: ``--help`` against the bare interpreter, against eager imports and against Airflow."""
    rounds = max(1, round(3 * scale))
    results = []
    help_s, bare_s = interleaved(_runner(HELP), _runner(BARE), rounds=rounds)
    results.append(
        Result(
            "cli_startup", "sparkhu --help", help_s, "s", "<= 1 s", help_s <= 1.0,
            detail=f"python -c pass {bare_s:.2f} s", peer="python -c pass", ratio=bare_s / help_s,
        )
    )  # fmt: skip
    lazy_s, eager_s = interleaved(_runner(HELP), _runner(EAGER), rounds=rounds)
    results.append(
        Result(
            "cli_startup", "sparkhu --help (lazy imports)", lazy_s, "s", "<= 1 s", lazy_s <= 1.0,
            detail=f"eager {eager_s:.2f} s", peer="same --help, app imported eagerly", ratio=eager_s / lazy_s,
        )
    )  # fmt: skip
    if AIRFLOW.exists():
        airflow = _runner([str(AIRFLOW), "--help"])
        ours_s, airflow_s = interleaved(_runner(HELP), airflow, rounds=rounds)
        results.append(
            Result(
                "cli_startup", "sparkhu --help vs airflow --help", ours_s, "s", "<= 1 s", ours_s <= 1.0,
                detail=f"airflow {airflow_s:.2f} s", peer="airflow --help (3.x)", ratio=airflow_s / ours_s,
            )
        )  # fmt: skip
    return results
