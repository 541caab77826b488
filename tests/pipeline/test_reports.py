"""Reports: figures aggregated over series, JSON and self-contained HTML per task-day, a day index."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sparkhu.pipeline import examples
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.reports import aggregate, day_label, write_report
from sparkhu.pipeline.runs import SeriesResult, TaskRun

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 1, 2, tzinfo=UTC)


def _run() -> TaskRun:
    return TaskRun(
        "impute",
        START,
        END,
        status="failed",
        rows_in=300,
        rows_out={"imputed": 280},
        series=[
            SeriesResult(
                "a/b/x", "success", 100, 100, report={"filled": 3, "choice": "linear", "mae": {"linear": 0.5}}
            ),
            SeriesResult(
                "a/b/y",
                "success",
                100,
                100,
                report={"filled": 5, "choice": "seasonal", "mae": {"linear": 1.5}},
            ),
            SeriesResult("a/b/z", "skipped", 2, error="fewer than 5 points (2)"),
            SeriesResult("a/b/w", "failed", 98, error="ValueError: <boom> & more"),
        ],
        seconds=1.25,
        error="1 series failed",
    )


def test_aggregate_summarises_numbers_counts_words_and_flattens() -> None:
    figures = aggregate(
        [{"n": 1, "ok": True, "sub": {"k": 2.0}, "xs": [1, 2]}, {"n": 3, "ok": False, "sub": {"k": 4.0}}]
    )
    assert figures["n"] == {"count": 2, "sum": 4.0, "mean": 2.0, "min": 1.0, "max": 3.0}
    assert figures["ok"] == {"True": 1, "False": 1}
    assert figures["sub.k"]["mean"] == 3.0
    assert figures["xs.len"]["sum"] == 2.0


def test_aggregate_tolerates_nan_and_mixed_values() -> None:
    figures = aggregate([{"score": float("nan")}, {"score": "n/a"}, {"only_nan": float("nan")}])
    assert figures["score"] == {"nan": 1, "n/a": 1}
    assert figures["only_nan"] == {"count": 1}


def test_json_html_and_index_are_written(tmp_path: Path) -> None:
    task = Task("impute", examples.scale, {"points": "raw"}, {"points": "imputed"}, params={"factor": 2.0})
    paths = write_report(tmp_path, "meters", task, _run())
    folder = tmp_path / "meters" / "2024-01-01"
    assert paths == [folder / "impute.json", folder / "impute.html"]
    doc = json.loads(paths[0].read_text())
    assert doc["series"] == {"total": 4, "success": 2, "failed": 1, "skipped": 1}
    assert doc["skipped"] == {"fewer than 5 points (2)": 1}
    assert doc["failures"] == [{"series_id": "a/b/w", "error": "ValueError: <boom> & more"}]
    assert doc["figures"]["filled"]["sum"] == 8.0 and doc["figures"]["choice"] == {"linear": 1, "seasonal": 1}
    assert doc["params"] == {"factor": 2.0} and doc["function"] == "sparkhu.pipeline.examples.scale"
    page = paths[1].read_text()
    assert "<svg" in page and "<style>" in page
    assert "&lt;boom&gt; &amp; more" in page  # escaped
    assert "src=" not in page and "<script" not in page  # self-contained
    index = (folder / "index.html").read_text()
    assert "href='impute.html'" in index and "failed" in index


def test_index_lists_every_task_of_the_day(tmp_path: Path) -> None:
    for name in ("validate", "dedup"):
        task = Task(name, examples.passthrough, {"points": "raw"}, {"points": name})
        write_report(tmp_path, "m", task, _run())
    index = (tmp_path / "m" / "2024-01-01" / "index.html").read_text()
    assert "dedup.html" in index and "validate.html" in index


def test_day_label_of_multi_day_interval() -> None:
    run = TaskRun("t", START, datetime(2024, 1, 8, tzinfo=UTC))
    assert day_label(run) == "2024-01-01_2024-01-07"
    assert day_label(_run()) == "2024-01-01"
