"""The daily DAG on Spark ``local[2]`` against the local engine on the same data (ratio).

The data and the DAG are those of :mod:`bench.pipeline_dag` (minutely series with seasons,
noise, gaps and spikes, one week, one back-fill batch), on 100 series at scale 1 (about a
million points: Spark pays a job per task stage, so this size runs in a minute or two). Each
engine gets its own lake and catalog. The Spark session is started (and its Python workers
warmed by one tiny job) before the clock starts; its start-up is reported on its own row.
"""

from __future__ import annotations

import tempfile
import time
from datetime import date

from bench import Result
from bench.pipeline_dag import DATASET, DAYS, make_week
from sparkhu.engine.base import Engine
from sparkhu.engine.local import LocalEngine
from sparkhu.engine.spark import SparkEngine
from sparkhu.errors import PipelineError
from sparkhu.pipeline.daily import daily_dag
from sparkhu.pipeline.runner import PipelineRunner, RunSummary
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake

N_SERIES = 100
CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "2g"}


def _run_dag(engine: Engine, root: str, table) -> RunSummary:
    lake = Lake(f"{root}/lake")
    lake.write("raw", DATASET, table)
    catalog = Catalog(f"sqlite:///{root}/catalog.db")
    for sid in table.column("series_id").combine_chunks().dictionary.to_pylist():
        catalog.upsert_series(SeriesInfo.of(sid, unit="W", value_min=0.0, value_max=100_000.0))
    try:
        dag = daily_dag()
    except PipelineError:
        dag = daily_dag(exclude=["anomalies", "windows", "correlation"])
    runner = PipelineRunner(lake, catalog, engine, dag, dataset=DATASET, days_per_run=DAYS)
    began = time.perf_counter()
    summary = runner.run(date(2024, 1, 1), date(2024, 1, DAYS))
    summary.seconds = time.perf_counter() - began
    catalog.close()
    return summary


def run(scale: float) -> list[Result]:
    """Wall time of the DAG on each engine and their ratio."""
    n_series = max(2, round(N_SERIES * scale))
    table = make_week(n_series, DAYS * 1440)
    points = table.num_rows
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-spark-") as root:
        with LocalEngine() as engine:
            local = _run_dag(engine, f"{root}/local", table)
        began = time.perf_counter()
        with SparkEngine("local[2]", conf=CONF) as engine:
            engine.map_inputs(abs, [-1.0, -2.0], {})  # session and Python workers up
            startup = time.perf_counter() - began
            spark = _run_dag(engine, f"{root}/spark", table)
    for name, summary in (("local", local), ("spark local[2]", spark)):
        results.append(
            Result(
                "spark",
                f"DAG on {name}",
                summary.seconds,
                f"s, {points / summary.seconds:,.0f} points/s",
                detail=f"{points:,} points, {n_series} series, {len(summary.runs)} runs, {summary.status}",
            )
        )
    results.append(
        Result("spark", "Spark session start-up", startup, "s", detail="JVM + first Python workers")
    )
    results.append(
        Result(
            "spark",
            "ratio spark/local",
            spark.seconds / local.seconds,
            "x",
            detail="wall time of the same DAG on the same data (lower is better for Spark)",
        )
    )
    return results
