"""The CLI answers bad input with one line and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sparkhu.cli.main import run


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch, distributed_env: dict[str, str]) -> None:
    """The session's configuration for in-process CLI runs (nothing to set for the embedded one)."""
    for name, value in distributed_env.items():
        monkeypatch.setenv(name, value)


def sparkhu(capsys, *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        run([*argv])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_commands(capsys):
    code, out, _ = sparkhu(capsys, "--help")
    assert code == 0
    for command in ("demo", "up", "ingest", "replay", "lake", "series", "predictions", "pipeline", "serve"):
        assert command in out


def test_bad_setting_is_one_line(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SPARKHU_GATEWAY__PORT", "abc")
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "config")
    assert code == 2
    assert err.strip().splitlines() == [
        "error: environment variable SPARKHU_GATEWAY__PORT: gateway.port: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')"
    ]


def test_missing_config_file(capsys, tmp_path: Path):
    code, _, err = sparkhu(capsys, "--config", str(tmp_path / "nope.toml"), "config")
    assert code == 2 and "nope.toml: no such file" in err


def test_up_without_sources(capsys, tmp_path: Path):
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "up")
    assert code == 2 and "no [[sources]]" in err


NAMES = ("--source", "ampds2", "--measurement", "electricity")


def test_ingest_needs_the_series_names(capsys, tmp_path: Path):
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "ingest", str(tmp_path / "x.csv"))
    assert code == 2 and "--source" in err and "Traceback" not in err


def test_ingest_missing_file(capsys, tmp_path: Path):
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "ingest", str(tmp_path / "missing.csv"), *NAMES)
    assert code == 2 and "missing.csv" in err and "Traceback" not in err


@pytest.mark.integration
def test_ingest_quarantines_bad_rows_and_keeps_good_ones(
    capsys, tmp_path: Path, backends: None, monkeypatch: pytest.MonkeyPatch
):
    csv = tmp_path / "Electricity_P.csv"
    csv.write_text(
        "UNIX_TS,WHE,RSE\n"
        "1333263600,100,10\n"
        "1333263660,abc,11\n"  # line 3: non-numeric WHE, RSE kept
        "yesterday,102,12\n"  # line 4: bad timestamp
        "1333263780,103\n"  # line 5: wrong column count
        "1333263840,104,14\n"
    )
    code, out, err = sparkhu(
        capsys,
        "--home",
        str(tmp_path / "h"),
        "ingest",
        str(csv),
        *NAMES,
        "--layout",
        "wide",
        "--field-suffix",
        ".P",
    )
    assert code == 0, err
    assert "quarantined 3 record(s)" in out
    code, out, _ = sparkhu(capsys, "--home", str(tmp_path / "h"), "lake", "quarantine", "ampds2_electricity")
    assert "line 3" in out and "line 4" in out and "line 5" in out
    code, out, _ = sparkhu(
        capsys, "--home", str(tmp_path / "h"), "lake", "read", "raw", "ampds2_electricity", "--limit", "100"
    )
    assert "5 points" in out  # WHE 100, 104; RSE 10, 11, 14
    monkeypatch.setenv("COLUMNS", "200")  # whole series ids in the table
    code, out, err = sparkhu(capsys, "--home", str(tmp_path / "h"), "series")
    assert code == 0, err
    assert "WHE.P" in out and "RSE.P" in out, out


@pytest.mark.integration
def test_unknown_series_in_predictions(capsys, tmp_path: Path, backends: None):
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "predictions", "no/such/series")
    assert code == 2 and "no/such/series" in err


def test_bad_time_option(capsys, tmp_path: Path):
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "pipeline", "run", "--start", "last tuesday")
    assert code == 2 and "--start" in err and "ISO 8601" in err


def test_bad_replay_shift(capsys, tmp_path: Path):
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "replay", "x.csv", *NAMES, "--shift", "soon")
    assert code == 2 and "shift" in err


def test_unreachable_catalog_names_the_uri(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SPARKHU_STORAGE__CATALOG", "postgresql://nobody@127.0.0.1:1/none")
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "series")
    assert code == 2 and "127.0.0.1:1" in err and "Traceback" not in err


def test_console_script_is_installed(tmp_path: Path):
    exe = Path(sys.executable).with_name("sparkhu")
    done = subprocess.run(
        [str(exe), "--home", str(tmp_path), "lake", "compact", "nozone", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "nozone" in done.stderr


def test_lake_ls_lists_a_corrupt_file_and_the_rest(capsys, tmp_path: Path, monkeypatch):
    from sparkhu.series import points
    from sparkhu.storage.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    lake.write("raw", "meters", points("a/b/c", [0, 86_400_000_000], [1.0, 2.0]))
    lake.write("raw", "other", points("a/b/d", [0], [3.0]))
    bad = tmp_path / "lake/raw/meters/date=1970-01-01/part-0-broken.parquet"
    bad.write_bytes(b"not parquet")
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = sparkhu(capsys, "--home", str(tmp_path), "lake", "ls")
    assert code == 0, err
    lines = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert lines["meters"].split("│")[4].strip() == "3" and lines["meters"].split("│")[5].strip() == "2"
    assert lines["other"].split("│")[5].strip() == "1"
    assert f"corrupt {bad}" in out.replace("\n", "")


def test_a_lake_root_that_is_no_path_or_uri_is_a_config_error(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SPARKHU_STORAGE__LAKE", "::::")
    code, _, err = sparkhu(capsys, "--home", str(tmp_path), "lake", "ls")
    assert code == 2 and "storage.lake: expected a folder path or a URI" in err and "Traceback" not in err
    assert not (Path.cwd() / "::::").exists()
