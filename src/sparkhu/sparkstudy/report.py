"""A study's results: an Arrow table, a CSV, plots, and two lake datasets.

In the lake (zone ``analysis``): ``spark_study`` holds one row per run (``series_id`` is
``<study id>/<setting>``, ``ts`` the study's start) and ``spark_study_executors`` the running
and pending executors over time (``ts`` the sample's time). Writing a study again replaces
its own rows only. :func:`read_studies` gives them back for the gateway.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.sparkstudy.study import COLUMNS, Study
from sparkhu.storage.lake import Lake

ZONE = "analysis"
RUNS, TIMELINE = "spark_study", "spark_study_executors"
_FLOATS = {
    "wall_s", "job_s", "executor_s", "vcpu_s", "gb_s", "cpu_avg_pct", "cpu_max_pct", "mem_avg_mb",
    "mem_max_mb", "task_s", "gc_s", "shuffle_read_mb", "shuffle_write_mb", "cost", "time_x_cost",
}  # fmt: skip
_INTS = {"executor_cores", "executor_memory_mb", "executor_instances", "executors_max", "pending_max"}


def _type(name: str) -> pa.DataType:
    if name in _FLOATS:
        return pa.float64()
    if name in _INTS:
        return pa.int64()
    return pa.bool_() if name == "dynamic_allocation" else pa.string()


def runs_table(study: Study) -> pa.Table:
    """One row per setting, typed columns (see :data:`~sparkhu.sparkstudy.study.COLUMNS`)."""
    return pa.table({c: pa.array([r.get(c) for r in study.rows], _type(c)) for c in COLUMNS})


def write_csv(study: Study, path: str | Path) -> Path:
    """The runs as CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in study.rows:
            writer.writerow({c: "" if row.get(c) is None else row[c] for c in COLUMNS})
    return path


def write_plots(study: Study, folder: str | Path) -> list[Path]:
    """``time_cost.png`` (time, cost, time × cost per setting) and ``executors.png`` (over time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = [r for r in study.rows if r["status"] == "ok"]
    names = [r["setting"] for r in done]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(
        axes, ("wall_s", "cost", "time_x_cost"), ("wall time (s)", "cost", "time × cost"), strict=True
    ):
        ax.bar(names, [r[key] for r in done], color="#4c78a8")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"{study.job} ({study.form}) — study {study.id}")
    fig.tight_layout()
    paths = [folder / "time_cost.png", folder / "executors.png"]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, timeline in study.timelines.items():
        if timeline:
            t = [p["t"] for p in timeline]
            line = ax.step(t, [p["running"] for p in timeline], where="post", label=f"{name} running")[0]
            ax.step(
                t, [p["pending"] for p in timeline], where="post", linestyle="--",
                color=line.get_color(), label=f"{name} pending",
            )  # fmt: skip
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("executors")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def write_lake(study: Study, lake: Lake) -> None:
    """Store the study's runs and executor timelines in the lake (replacing this study's rows)."""
    runs = runs_table(study)
    ids = pa.array([f"{study.id}/{r['setting']}" for r in study.rows], pa.string())
    runs = runs.append_column("series_id", ids).append_column(
        "ts", pa.array([study.started] * len(study.rows), pa.timestamp("us", tz="UTC"))
    )
    meta = {"study": study.id, "job": study.job, "form": study.form, "input": study.input}
    for key, value in meta.items():
        runs = runs.append_column(key, pa.array([value] * runs.num_rows, pa.string()))
    rows: dict[str, list[Any]] = {
        "series_id": [],
        "ts": [],
        "t": [],
        "running": [],
        "pending": [],
        "study": [],
    }
    for name, timeline in study.timelines.items():
        for point in timeline:
            rows["series_id"].append(f"{study.id}/{name}")
            rows["ts"].append(study.started + timedelta(seconds=float(point["t"])))
            rows["t"].append(float(point["t"]))
            rows["running"].append(int(point["running"]))
            rows["pending"].append(int(point["pending"]))
            rows["study"].append(study.id)
    timeline_table = pa.table(
        {
            "series_id": pa.array(rows["series_id"], pa.string()),
            "ts": pa.array(rows["ts"], pa.timestamp("us", tz="UTC")),
            "t": pa.array(rows["t"], pa.float64()),
            "running": pa.array(rows["running"], pa.int64()),
            "pending": pa.array(rows["pending"], pa.int64()),
            "study": pa.array(rows["study"], pa.string()),
        }
    )
    for dataset, table in ((RUNS, runs), (TIMELINE, timeline_table)):
        _replace_study(lake, dataset, study.id, table)


def _replace_study(lake: Lake, dataset: str, study_id: str, table: pa.Table) -> None:
    """Replace the days ``table`` touches, keeping other studies' rows of those days."""
    days = sorted({ts.date() for ts in table.column("ts").to_pylist()})
    if not days:
        return
    start = datetime.combine(days[0], datetime.min.time(), UTC)
    end = datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(days=1)
    if (ZONE, dataset) in lake.datasets(ZONE):
        old = lake.read_table(ZONE, dataset, start=start, end=end)
        if old.num_rows and "study" in old.column_names:
            old = old.filter(pc.invert(pc.equal(old.column("study"), study_id)))
            table = pa.concat_tables([old.select(table.column_names).cast(table.schema), table])
    lake.replace_table(ZONE, dataset, table, days)


def read_studies(lake: Lake) -> list[dict[str, Any]]:
    """Every stored study: id, job, form, input, started, runs and executor timelines (for the gateway)."""
    if (ZONE, RUNS) not in lake.datasets(ZONE):
        return []
    runs = lake.read_table(ZONE, RUNS).to_pylist()
    timeline = lake.read_table(ZONE, TIMELINE).to_pylist() if (ZONE, TIMELINE) in lake.datasets(ZONE) else []
    studies: dict[str, dict[str, Any]] = {}
    for row in runs:
        study = studies.setdefault(
            row["study"],
            {
                "id": row["study"], "job": row["job"], "form": row["form"], "input": row["input"],
                "started": row["ts"], "runs": [], "timelines": {},
            },
        )  # fmt: skip
        study["runs"].append({c: row.get(c) for c in COLUMNS})
    for point in timeline:
        found = studies.get(point["study"])
        if found is not None:
            name = point["series_id"].split("/", 1)[1]
            found["timelines"].setdefault(name, []).append(point)
    return sorted(studies.values(), key=lambda s: s["started"], reverse=True)
