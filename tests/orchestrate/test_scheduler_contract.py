"""What a scheduler relies on: ``sparkhu pipeline run`` runs exactly one task for one day, exits
non-zero when its work failed and says where the reports are."""

from __future__ import annotations

from pathlib import Path

from tests.orchestrate.conftest import DATASET, DAY, sparkhu

from sparkhu.storage.lake import Lake


def test_one_task_for_one_day_runs_exactly_that(capsys, fresh_home):
    home = fresh_home("h")
    code = sparkhu("--home", str(home), "pipeline", "run", "--task", "validate", "--only", "--day", DAY)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "success: 1 task-day(s)" in out
    assert f"reports: {home / 'reports' / DATASET / DAY / 'index.html'}" in out.replace("\n", "")
    lake = Lake(home / "lake")
    assert [p.key for p in lake.partitions("validated", DATASET)] == [f"date={DAY}"]
    assert lake.partitions("clean", f"{DATASET}.deduped") == []  # downstream left alone


def test_a_failed_task_exits_1_naming_it_and_the_reports(capsys, fresh_home):
    home = fresh_home("h")
    blocker = home / "lake" / "clean" / f"{DATASET}.deduped"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where dedup writes its folder")
    code = sparkhu(
        "--home",
        str(home),
        "pipeline",
        "run",
        "--task",
        "validate",
        "--task",
        "dedup",
        "--only",
        "--day",
        DAY,
    )
    captured = capsys.readouterr()  # the summary on stdout, each failure on stderr
    out = (captured.out + captured.err).replace("\n", "")
    assert code == 1
    assert "failed: 2 task-day(s)" in out
    assert f"dedup {DAY} failed: cannot write {blocker}" in out
    assert "reports: " in out and "index.html" in out


def test_an_empty_home_is_an_error_not_a_success(capsys, tmp_path: Path):
    code = sparkhu("--home", str(tmp_path / "empty"), "pipeline", "run", "--dataset", "nope", "--day", DAY)
    captured = capsys.readouterr()
    assert code == 2
    assert "--dataset nope: no data in the lake's raw/nope" in captured.err
    assert "success" not in captured.out


def test_day_and_only_are_checked(capsys, tmp_path: Path):
    home = str(tmp_path / "h")
    code = sparkhu("--home", home, "pipeline", "run", "--day", DAY, "--start", DAY)
    assert code == 2 and "--day is one day: give it alone, or --start/--end" in capsys.readouterr().err
    code = sparkhu("--home", home, "pipeline", "run", "--only", "--day", DAY)
    assert code == 2 and "--only runs exactly the --task(s) named" in capsys.readouterr().err
    code = sparkhu("--home", home, "pipeline", "run", "--day", "2024-13-01")
    assert code == 2 and "--day" in capsys.readouterr().err
