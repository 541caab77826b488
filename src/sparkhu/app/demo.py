"""``sparkhu demo``: ``sparkhu up`` on generated household power, with its history prepared.

The demo owns its home (``<home>/demo``) and starts it afresh each time. :func:`prepare`
generates AMPds2-like minutely data from ``days`` before now to ``replay_days`` after it,
ingests the part before ``now - replay_days`` as an AMPds2-style CSV through the file source
(history) and runs the daily cleaning DAG over it. What runs then is the platform of
:func:`sparkhu.app.assembly.build_platform` with one source — the rest replayed as live data,
the last ``replay_days`` before now at ``speed`` × real time and then, caught up with the wall
clock, at real time (never ahead of it) — exactly as ``sparkhu up`` would run it: the lake sink,
the online predictor, the scheduler and the gateway. Meanwhile :func:`train_champions`
back-tests a small portfolio and registers each series' champion, which the online predictor
then hot-swaps in: the dashboard shows actuals and the online forecasts from its first seconds,
not after the training. The names ``ampds2``/``electricity`` and the
``Asia/Seoul`` display timezone are the demo's own, not the product's defaults.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sparkhu.app.metadata import job_lineage, lake_dataset, source_dataset
from sparkhu.app.runtime import Runtime
from sparkhu.config import DemoSettings, Settings
from sparkhu.connectors.replay import ReplaySourceSettings
from sparkhu.storage.catalog import SeriesInfo
from sparkhu.storage.writes import writing_run

SOURCE, MEASUREMENT = "ampds2", "electricity"
DATASET = f"{SOURCE}_{MEASUREMENT}"


@dataclass
class DemoPlan:
    """What :func:`prepare` made: files, the live part's source spec, counts."""

    start: datetime
    """The first point of the history."""
    cut: datetime
    """Where the history ends and the live part begins (``replay_days`` before now)."""
    folder: Path
    history_csv: Path
    live_parquet: Path
    defects_parquet: Path
    replay: ReplaySourceSettings
    history_points: int
    live_points: int
    quarantined: int
    series: list[str]


def demo_settings(settings: Settings) -> Settings:
    """The demo's own settings: the same as ``settings`` but inside ``<home>/demo``."""
    home = settings.home / "demo"
    data = settings.model_dump()
    data["home"] = home
    data["storage"].update(lake="", catalog="")
    data["bus"].update(uri="")
    data["mlflow"].update(tracking_uri="")
    data["timezone"] = settings.demo.timezone
    data["forecast"]["champion_poll_s"] = 10.0  # the champions trained just before are served at once
    data["sources"] = []  # the demo's only source is its replay
    return Settings.model_validate(data)


def reset_home(settings: Settings) -> None:
    """Remove a previous demo's files (only the demo's own home)."""
    if settings.home.name == "demo" and settings.home.exists():
        shutil.rmtree(settings.home)
    settings.home.mkdir(parents=True, exist_ok=True)


def prepare(
    runtime: Runtime, demo: DemoSettings, *, now: datetime | None = None, clean: bool = True
) -> DemoPlan:
    """Generate the data, ingest the history and, with ``clean``, clean it (else call
    :func:`clean_history`); return what the live part needs."""
    from sparkhu.connectors.files import FileSource
    from sparkhu.connectors.runner import ingest_to_lake
    from sparkhu.demo.generator import generate

    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = now - timedelta(days=demo.days)
    cut = now - timedelta(days=demo.replay_days)
    total_days = demo.days + demo.replay_days
    data = generate(days=total_days, meters=demo.meters, seed=demo.seed, start=start)

    folder = runtime.settings.home / "data"
    folder.mkdir(parents=True, exist_ok=True)
    history_csv = folder / "Electricity_P.csv"
    data.write_csv(history_csv, until_unix_s=int(cut.timestamp()))
    live = data.points.filter(
        pc.greater_equal(data.points["ts"], pa.scalar(cut, pa.timestamp("us", tz="UTC")))
    )
    live_parquet = folder / "live.parquet"
    pq.write_table(
        live.cast(
            pa.schema(
                [("series_id", pa.string()), ("ts", live.schema.field("ts").type), ("value", pa.float64())]
            )
        ),
        live_parquet,
    )
    defects_parquet = folder / "defects.parquet"
    pq.write_table(data.defects, defects_parquet)

    series = sorted(pc.unique(data.points["series_id"].cast(pa.string())).to_pylist())
    runtime.catalog.upsert_source(SOURCE, "demo", {"generator": "ampds2-like", "seed": demo.seed})
    for sid in series:
        src, measurement, field = sid.split("/")
        runtime.catalog.upsert_series(
            SeriesInfo(
                sid,
                src,
                measurement,
                field,
                unit="W",
                period_s=60.0,
                value_min=0.0,
                value_max=50_000.0,
                tags={"meter": field.split(".")[0]},
            )
        )

    history = FileSource(
        "demo:history",
        str(history_csv),
        format="csv",
        layout="wide",
        series_prefix=f"{SOURCE}/{MEASUREMENT}/",
        field_suffix=".P",
        ts_column="UNIX_TS",
        ts_unit="s",
    )
    with job_lineage(
        runtime,
        f"ingest:{history.name}",
        inputs=[source_dataset("file", history.name)],
        outputs=[lake_dataset(runtime, f"raw/{DATASET}")],
    ) as run:
        with writing_run(f"ingest:{history.name}"):
            stats = ingest_to_lake(history, runtime.lake, runtime.catalog, zone="raw", dataset=DATASET)
        run.detail.update(points=stats.points, quarantined=stats.quarantined)
    if clean:
        clean_history(runtime, start, cut)
    replay = ReplaySourceSettings(
        name="demo:live",
        kind="replay",
        path=str(live_parquet),
        source=SOURCE,
        measurement=MEASUREMENT,
        format="parquet",
        layout="long",
        shift="0s",
        speed=runtime.settings.demo.speed,
        future=False,  # the live part catches up with the wall clock at `speed`, then plays in real time
    )
    return DemoPlan(
        start,
        cut,
        folder,
        history_csv,
        live_parquet,
        defects_parquet,
        replay,
        stats.points,
        live.num_rows,
        stats.quarantined,
        series,
    )


def clean_history(
    runtime: Runtime, start: datetime, cut: datetime, *, stop: threading.Event | None = None
) -> list[Any]:
    """Run the daily cleaning DAG over the history's whole days, a day at a time until ``stop`` is set;
    returns the days' summaries."""
    from sparkhu.app.pipelines import daily

    runner = daily(runtime, DATASET)
    summaries = []
    day, last = start.date(), (cut - timedelta(days=1)).date()
    while day <= last and not (stop is not None and stop.is_set()):
        summaries.append(runner.run(day, day))
        day += timedelta(days=1)
    return summaries


def train_champions(
    runtime: Runtime,
    series: list[str],
    *,
    history_days: float = 3.0,
    stop: threading.Event | None = None,
    per_round: int = 2,
) -> Any:
    """Back-test a small portfolio on the last ``history_days`` of the history, register champions.

    Kept fast for the demo: three cheap models, two back-test windows, the newest days only. Returns
    the :class:`~sparkhu.forecast.train.TrainSummary` (the CLI prints its table). Trains ``per_round``
    series at a time and stops between rounds once ``stop`` is set (a demo stopped while training).
    """
    from sparkhu.forecast.train import TrainConfig, train_series

    forecast = runtime.settings.forecast
    config = TrainConfig(
        horizon=forecast.horizon,
        season_length=forecast.season_length,
        period_s=60.0,
        portfolio=("seasonal_naive", "ses", "nlinear"),
        windows=2,
        max_points=round(history_days * 1440),
    )
    local = {"min_rows_for_pool": 50_000} if runtime.settings.engine.uri == "local" else {}
    summary = None
    with runtime.open_engine(**local) as engine:
        for at in range(0, len(series), per_round):
            if stop is not None and stop.is_set():
                break
            done = train_series(
                runtime.lake,
                runtime.catalog,
                runtime.predictions,
                runtime.registry,
                series[at : at + per_round],
                dataset=DATASET,
                config=config,
                engine=engine,
            )
            if summary is None:
                summary = done
            else:
                summary.results += done.results
                summary.seconds += done.seconds
    return summary
