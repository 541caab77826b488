"""The CLI as a new user meets it: usage errors, empty homes, failed jobs, replays that land, every
dataset readable, whole series ids, grouped runs, a stale clean zone said, a fast start."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkhu.cli.main import run
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, RunRecord, SeriesInfo
from sparkhu.storage.lake import Lake

MINUTE = 60_000_000
DAY0 = datetime(2024, 3, 4, tzinfo=UTC)
SID = "ampds2/electricity/WHE.P"
DATASET = "ampds2_electricity"


def sparkhu(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        run([*argv])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def day_of_points(day: datetime, n: int = 60, step_us: int = MINUTE) -> pa.Table:
    start = int(day.timestamp() * 1_000_000)
    return points(SID, start + np.arange(n) * step_us, 100 + np.sin(np.arange(n) / 5))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("seris",), "No such command 'seris'. Did you mean 'series'"),
        (("predict",), "Missing argument 'series'."),
        (("lake", "read", "raw"), "Missing argument 'dataset'."),
        (("runs", "--limit", "zero"), "Invalid value for '--limit'"),
    ],
)
def test_usage_errors_print_the_usage_and_exit_2(capsys, argv: tuple[str, ...], message: str):
    code, _, err = sparkhu(capsys, *argv)
    assert code == 2
    assert err.startswith("Usage: sparkhu"), err
    assert f"Error: {message}" in err, err
    assert "internal error" not in err and "--debug" not in err


def test_a_bare_sparkhu_prints_the_help_and_exits_2(capsys):
    code, out, err = sparkhu(capsys)
    assert code == 2
    assert "Usage: sparkhu" in out + err and "series" in out + err
    assert "internal error" not in err


def test_help_starts_without_the_data_stack():
    probe = (
        "import sys\n"
        "from sparkhu.cli.main import run\n"
        "try:\n    run(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pyarrow', 'pandas', 'sqlalchemy', 'mlflow', 'duckdb', 'numpy')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout[-500:] + done.stderr[-2000:]


def test_pipeline_days_without_data_are_nothing_to_run(capsys, tmp_path: Path):
    Lake((tmp_path / "lake").as_uri()).write("raw", DATASET, day_of_points(DAY0))
    code, out, _ = sparkhu(capsys, "--home", str(tmp_path), "pipeline", "run", "--day", "2024-05-01")
    assert code == 0
    assert "nothing to run" in out and "2024-03-04 → 2024-03-04" in out
    assert "task-day(s)" not in out


def test_a_failed_pipeline_exits_1_and_names_its_report(capsys, tmp_path: Path):
    lake = Lake((tmp_path / "lake").as_uri())
    (path,) = lake.write("raw", DATASET, day_of_points(DAY0))
    Path(path).write_bytes(b"not parquet")  # every task of the day fails reading it
    lake.write("raw", DATASET, day_of_points(DAY0 + timedelta(hours=2)))
    code, out, err = sparkhu(capsys, "--home", str(tmp_path), "pipeline", "run", "--day", "2024-03-04")
    assert code == 1, out + err
    assert "failed" in out
    assert "failed" in err and "(report: " in err and str(tmp_path / "reports") in err


def test_replay_lands_its_points_in_the_lake_on_the_minute(capsys, tmp_path: Path):
    history = tmp_path / "h.parquet"
    pq.write_table(day_of_points(DAY0, n=3).cast(pa.schema([("series_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")), ("value", pa.float64())])), history)  # fmt: skip
    before = datetime.now(UTC)
    code, out, err = sparkhu(
        capsys, "--home", str(tmp_path / "home"), "replay", str(history),
        "--source", "ampds2", "--measurement", "electricity", "--duration", "30",
    )  # fmt: skip
    assert code == 0, out + err
    assert "×60 (end_now)" in out  # the defaults of a [[sources]] replay
    assert "3 landed in raw/ampds2_electricity" in out
    landed = Lake((tmp_path / "home" / "lake").as_uri()).read("raw", DATASET)
    assert landed.num_rows == 3
    stamps = landed.column("ts").cast(pa.int64()).to_numpy()
    assert (stamps % MINUTE == 0).all()  # no odd fractional seconds
    assert stamps.max() <= datetime.now(UTC).timestamp() * 1e6  # never ahead of the wall clock
    assert stamps.max() >= (before - timedelta(minutes=1)).timestamp() * 1e6


def test_every_dataset_the_pipeline_writes_is_readable(capsys, tmp_path: Path):
    lake = Lake((tmp_path / "lake").as_uri())
    lake.write("raw", DATASET, day_of_points(DAY0))
    flags = pa.table(
        {
            "series_id": [SID, SID],
            "ts": pa.array([DAY0, DAY0 + timedelta(minutes=1)], pa.timestamp("us", tz="UTC")),
            "score": [3.9, 4.2],
            "method": ["sigma", "sigma"],
        }
    )
    lake.replace_table("analysis", f"{DATASET}.anomalies", flags, [DAY0.date()])
    code, out, err = sparkhu(
        capsys, "--home", str(tmp_path), "lake", "read", "analysis", f"{DATASET}.anomalies"
    )
    assert code == 0, err
    assert "2 rows" in out and "score" in out and "4.200" in out and "sigma" in out
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "lake", "read", "analysis", "nope")
    assert code == 2 and "no dataset analysis/nope" in err and f"{DATASET}.anomalies" in err


def test_tables_show_whole_series_ids_and_errors_name_commands(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    long_id = "a-rather-long-source-name/a-long-measurement-name/" + "F" * 40
    source, measurement, field = long_id.split("/")
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.upsert_series(SeriesInfo(long_id, source, measurement, field, unit="W", period_s=60.0))
    catalog.close()
    code, out, _ = sparkhu(capsys, "--home", str(tmp_path), "series")
    assert code == 0 and long_id in out
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "predictions", "no/such/series")
    assert code == 2 and "`sparkhu series`" in err and "list_series()" not in err


def test_runs_of_one_task_are_one_row(capsys, tmp_path: Path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    at = datetime(2024, 3, 10, tzinfo=UTC)
    catalog.record_runs(
        [
            RunRecord(
                f"c{d}", "pipeline", f"{DATASET}/correlation", "success", at + timedelta(minutes=d),
                finished_at=at + timedelta(minutes=d), interval_start=DAY0 + timedelta(days=d),
                interval_end=DAY0 + timedelta(days=d + 1), rows_in=10, rows_out=1,
            )
            for d in range(7)
        ]
    )  # fmt: skip
    catalog.close()
    code, out, _ = sparkhu(capsys, "--home", str(tmp_path), "runs")
    assert code == 0
    rows = [line for line in out.splitlines() if "correlation" in line]
    assert len(rows) == 1 and "2024-03-04 → 2024-03-10" in rows[0] and " 7 " in rows[0], out
    code, out, _ = sparkhu(capsys, "--home", str(tmp_path), "runs", "--each")
    assert len([line for line in out.splitlines() if "correlation" in line]) == 7


def test_predict_says_when_the_clean_zone_is_behind(capsys, tmp_path: Path):
    lake = Lake((tmp_path / "lake").as_uri())
    for d in range(3):
        lake.write("raw", DATASET, day_of_points(DAY0 + timedelta(days=d)))
    lake.write("clean", DATASET, day_of_points(DAY0))
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.upsert_series(SeriesInfo(SID, "ampds2", "electricity", "WHE.P", unit="W", period_s=60.0))
    catalog.close()
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "predict", SID)
    assert "clean/ampds2_electricity has not been cleaned for 2024-03-05 → 2024-03-06" in err
    assert "--catch-up" in err
    assert code == 2 and "no model is registered as 'champion'" in err and "sparkhu train" in err


def test_piped_progress_is_plain_lines(tmp_path: Path):
    csv = tmp_path / "Electricity_P.csv"
    csv.write_text("UNIX_TS,WHE\n1709510400,1\n1709510460,2\n")
    exe = Path(sys.executable).with_name("sparkhu")
    done = subprocess.run(
        [str(exe), "--home", str(tmp_path / "h"), "ingest", str(csv), "--source", "ampds2",
         "--measurement", "electricity", "--layout", "wide", "--field-suffix", ".P"],
        capture_output=True, text=True, timeout=120, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"ingest {csv}: 2 points" in done.stdout
    assert "━" not in done.stdout and "\x1b[" not in done.stdout
