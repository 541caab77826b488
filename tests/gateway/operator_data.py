"""What the operator's pages show, written where the pipeline writes it, over the gateway's stack.

Runs of 3 tasks × 3 days (one failed task-day with one failed series), anomalies, gap slots and
outliers of ``SID``, reports of the quality tasks, correlations of the dataset.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
from tests.gateway.conftest import DATASET, OTHER, SID, T0, Stack, minutes

from sparkhu.pipeline.records import RUN_KIND, SERIES_KIND
from sparkhu.storage.catalog import RunRecord
from sparkhu.timeaxis import TS_TYPE

TASKS = ("validate", "dedup", "anomalies")
DAYS = [T0.date() - timedelta(days=2), T0.date() - timedelta(days=1), T0.date()]
FAILED = ("dedup", DAYS[1])


def ts(*mins: float) -> pa.Array:
    """Timestamps T0 + ``mins`` minutes."""
    return pa.array([int(minutes(m).timestamp() * 1_000_000) for m in mins]).cast(TS_TYPE)


def seed_analysis(stack: Stack) -> None:
    """Anomalies (2), gap slots (3) and outliers (1) of SID; correlations of the dataset."""
    days = [T0.date()]
    anomalies = pa.table(
        {
            "series_id": [SID, SID],
            "ts": ts(30, 90),
            "resid": [9.0, -8.0],
            "score": [6.1, 5.2],
            "method": ["mad", "mad"],
        }
    )
    missing = pa.table({"series_id": [SID] * 3, "ts": ts(60, 61, 62), "gap_slots": [3, 3, 3]})
    outliers = pa.table(
        {"series_id": [SID], "ts": ts(120), "value": [1200.0], "lower": [0.0], "upper": [1150.0]}
    )
    for name, table in (("anomalies", anomalies), ("missing", missing), ("outliers", outliers)):
        stack.lake.replace_table("analysis", f"{DATASET}.{name}", table, days)
    pairs = pa.table(
        {
            "series_id": ["*"],
            "ts": ts(0),
            "series_a": [SID],
            "series_b": [OTHER],
            "lag_s": [120.0],
            "pearson": [0.87],
            "spearman": [0.8],
            "n": [180],
        }
    )
    stack.lake.replace_table("analysis", f"{DATASET}.correlation", pairs, days)


def seed_runs(stack: Stack) -> None:
    """Task-day records of 3 tasks × 3 days and their per-series records (2 series each)."""
    records = []
    for day in DAYS:
        start = minutes(0) + (day - T0.date())
        for task in TASKS:
            failed = (task, day) == FAILED
            name = f"{DATASET}/{task}"
            run_id = f"{task}-{day}"
            common = dict(
                started_at=start + timedelta(days=1),
                finished_at=start + timedelta(days=1, seconds=2),
                interval_start=start,
                interval_end=start + timedelta(days=1),
            )
            records.append(
                RunRecord(
                    run_id,
                    RUN_KIND,
                    name,
                    "failed" if failed else "success",
                    rows_in=180,
                    rows_out=180,
                    params={"seconds": 1.5},
                    error="boom" if failed else None,
                    **common,
                )
            )
            for i, sid in enumerate((SID, OTHER)):
                bad = failed and sid == OTHER
                records.append(
                    RunRecord(
                        f"{run_id}-{i}",
                        SERIES_KIND,
                        name,
                        "failed" if bad else "success",
                        series_id=sid,
                        **common,
                    )
                )
    stack.catalog.record_runs(records)


def seed_reports(folder: Path) -> None:
    """Quality reports of the 3 days (JSON as the pipeline writes them) and one HTML report."""
    for n, day in enumerate(DAYS):
        where = folder / DATASET / day.isoformat()
        where.mkdir(parents=True, exist_ok=True)
        figures = {
            "regularity": {"periodic_error": 0.01 * n, "period_s": 60.0},
            "missing": {"gaps": n, "completeness": 1.0 - 0.01 * n},
            "imputation": {"filled": 3 * n},
            "outliers": {"outliers": n},
            "anomalies": {"anomalies": 2 * n},
        }
        for task, mine in figures.items():
            doc = {"task": task, "status": "success", "figures": {"series": 2}, "per_series": {SID: mine}}
            (where / f"{task}.json").write_text(json.dumps(doc))
        for task in TASKS:
            (where / f"{task}.html").write_text(f"<html><body><h1>{task} {day}</h1></body></html>")


def day_of(value: date) -> str:
    """ISO day."""
    return value.isoformat()
