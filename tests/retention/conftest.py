"""Fixtures of the retention tests: a lake, a catalog and a clock in a temporary home."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.config import RetentionSettings, Settings
from sparkhu.retention.context import RetentionContext
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake
from sparkhu.timeaxis import to_us

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DATASET = "meters"
SERIES = ["home/power/a", "home/power/b", "lab/temp/c"]


def minutely(
    start: datetime, days: float, series: list[str] = SERIES, every_s: int = 60, seed: int = 0
) -> pa.Table:
    """Points every ``every_s`` from ``start`` for ``days`` days, per series; values reproducible."""
    rng = np.random.default_rng(seed)
    n = int(days * 86_400 // every_s)
    ts = to_us(start) + np.arange(n, dtype=np.int64) * every_s * 1_000_000
    tables = [points(sid, ts, rng.normal(100, 10, n).round(3)) for sid in series]
    return pa.concat_tables(tables).combine_chunks()


def mark_processed(
    catalog: Catalog, dataset: str, first: date, last: date, tasks: tuple[str, ...] = ("dedup",)
) -> None:
    """Record successful pipeline runs of ``tasks`` over the days first..last (inclusive)."""
    records = []
    day = first
    while day <= last:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for task in tasks:
            records.append(
                RunRecord(
                    f"{dataset}-{task}-{day}",
                    "pipeline",
                    f"{dataset}/{task}",
                    "success",
                    start,
                    finished_at=start,
                    interval_start=start,
                    interval_end=start + timedelta(days=1),
                )
            )
        day += timedelta(days=1)
    catalog.record_runs(records)


@pytest.fixture
def ctx(tmp_path: Path, settings: Settings) -> Iterator[RetentionContext]:
    """The catalog of the test configuration (SQLite, or PostgreSQL with ``--sparkhu-config=distributed``)."""
    catalog = Catalog(settings.storage.catalog)
    context = RetentionContext(
        lake=Lake(tmp_path / "lake"),
        catalog=catalog,
        settings=RetentionSettings(floor_days=1, training_days=7),
        archive=str(tmp_path / "archive"),
        clock=lambda: to_us(NOW),
    )
    yield context
    catalog.close()


def all_rows(ctx: RetentionContext, zone: str = "raw", dataset: str = DATASET) -> set[tuple[Any, ...]]:
    """Every point a reader sees, as (series, ts µs, value)."""
    table = ctx.lake.read(zone, dataset)
    return set(
        zip(
            table.column("series_id").cast(pa.string()).to_pylist(),
            table.column("ts").cast(pa.int64()).to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    )
