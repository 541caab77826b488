"""``sparkhu demo``: the whole platform on generated household power, in one process.

The demo owns its home (``<home>/demo``) and starts it afresh each time. It generates
AMPds2-like minutely data ending ``replay_days`` after now, ingests the part before now as
an AMPds2-style CSV through the file source (history), runs the daily cleaning DAG over it,
then replays the rest as live data at ``speed`` × real time through the bus into the lake
sink and the online predictor, while the gateway serves the dashboard.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sparkhu.config import DemoSettings, Settings, SourceSettings
from sparkhu.context import Context
from sparkhu.storage.catalog import SeriesInfo

SOURCE, MEASUREMENT = "ampds2", "electricity"
DATASET = f"{SOURCE}_{MEASUREMENT}"


@dataclass
class DemoPlan:
    """What :func:`prepare` made: files, the live part's source spec, counts."""

    folder: Path
    history_csv: Path
    live_parquet: Path
    defects_parquet: Path
    replay: SourceSettings
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
    return Settings.model_validate(data)


def reset_home(settings: Settings) -> None:
    """Remove a previous demo's files (only the demo's own home)."""
    if settings.home.name == "demo" and settings.home.exists():
        shutil.rmtree(settings.home)
    settings.home.mkdir(parents=True, exist_ok=True)


def prepare(ctx: Context, demo: DemoSettings, *, now: datetime | None = None) -> DemoPlan:
    """Generate the data, ingest the history, clean it; return what the live part needs."""
    from sparkhu.connectors.files import FileSource
    from sparkhu.connectors.runner import ingest_to_lake
    from sparkhu.demo.generator import generate
    from sparkhu.engine import open_engine
    from sparkhu.pipeline.daily import daily_runner

    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = now - timedelta(days=demo.days)
    total_days = demo.days + demo.replay_days
    data = generate(days=total_days, meters=demo.meters, seed=demo.seed, start=start)

    folder = ctx.settings.home / "data"
    folder.mkdir(parents=True, exist_ok=True)
    cut_s = int(now.timestamp())
    history_csv = folder / "Electricity_P.csv"
    data.write_csv(history_csv, until_unix_s=cut_s)
    live = data.points.filter(
        pc.greater_equal(data.points["ts"], pa.scalar(now, pa.timestamp("us", tz="UTC")))
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
    ctx.catalog.upsert_source(SOURCE, "demo", {"generator": "ampds2-like", "seed": demo.seed})
    for sid in series:
        src, measurement, field = sid.split("/")
        ctx.catalog.upsert_series(
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
    stats = ingest_to_lake(history, ctx.lake, ctx.catalog, zone="raw", dataset=DATASET)
    with open_engine(ctx.settings.engine) as engine:
        runner = daily_runner(
            ctx.lake, ctx.catalog, engine, DATASET, settings=ctx.settings.pipeline, home=ctx.settings.home
        )
        runner.run(start.date(), (now - timedelta(days=1)).date())
    replay = SourceSettings(
        name="demo:live",
        kind="replay",
        path=str(live_parquet),
        source=SOURCE,
        measurement=MEASUREMENT,
        format="parquet",
        layout="long",
        shift="0s",
        speed=ctx.settings.demo.speed,
    )
    return DemoPlan(
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


def train_champions(
    ctx: Context,
    registry: Any,
    series: list[str],
    *,
    history_days: float = 3.0,
) -> Any:
    """Back-test a small portfolio on the last ``history_days`` of the history, register champions.

    Kept fast for the demo: three cheap models, two back-test windows, the newest days only. Returns
    the :class:`~sparkhu.forecast.train.TrainSummary` (the CLI prints its table).
    """
    from sparkhu.engine import open_engine
    from sparkhu.forecast.train import TrainConfig, train_series

    forecast = ctx.settings.forecast
    config = TrainConfig(
        horizon=forecast.horizon,
        season_length=forecast.season_length,
        period_s=60.0,
        portfolio=("seasonal_naive", "ses", "nlinear"),
        windows=2,
        max_points=round(history_days * 1440),
    )
    local = {"min_rows_for_pool": 50_000} if ctx.settings.engine.uri == "local" else {}
    with open_engine(ctx.settings.engine, **local) as engine:
        return train_series(
            ctx.lake,
            ctx.catalog,
            ctx.predictions,
            registry,
            series,
            dataset=DATASET,
            config=config,
            engine=engine,
        )
