"""Retention: a pass (plan + apply, archive and a two-level downsample) over a year of minutely data
for 100 series (x scale), the same age-based delete against a DuckDB ``COPY ... PARTITION_BY``
rewrite of the same data, and planning alone over 10,000 partitions.

* **pass**: policies ``backup`` (archive rows older than half the span) and ``ladder`` (raw → 5 min
  → 1 h, each level its own age); wall time of plan and apply, rows/s over the rows archived,
  deleted or rolled up, bytes moved out of the lake (to the trash, purged after the soft-delete
  window; the archive is the zstd copy).
* **age delete vs DuckDB**: deleting rows older than a cut-off that is not a partition boundary
  (whole partitions dropped, the boundary one trimmed) against the plain alternative, rewriting the
  rows to keep with ``COPY (SELECT ... WHERE ts >= cut) TO ... (PARTITION_BY (date))``; interleaved,
  each run on a fresh hard-linked copy of the lake.
* **planning**: a dry-run plan over 10,000 hourly partitions, cold (a new lake object: row counts
  from the file names the lake wrote, no footer read) and warm (counts remembered), target ≤ 1 s;
  the process's CPU time is reported beside the wall clock (the bench machine is shared).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from bench import Result, interleaved
from sparkhu.config import RetentionSettings
from sparkhu.retention.apply import apply_plan
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import make_plan
from sparkhu.retention.policies import set_policy
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE
from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake
from sparkhu.timeaxis import to_us

N_SERIES = 100
START = datetime(2024, 1, 1, tzinfo=UTC)
DATASET = "meters"
NAMES = pa.array([f"bench/meter{i:03d}/P" for i in range(N_SERIES)], pa.string())


def _week(first_minute: int, minutes: int, seed: int) -> pa.Table:
    ts = np.repeat(to_us(START) + (first_minute + np.arange(minutes, dtype=np.int64)) * 60_000_000, N_SERIES)
    idx = np.tile(np.arange(N_SERIES, dtype=np.int32), minutes)
    ids = pa.DictionaryArray.from_arrays(pa.array(idx), NAMES).cast(SERIES_ID_TYPE)
    values = np.random.default_rng(seed).normal(1000.0, 50.0, size=len(ts)).round(2)
    return pa.Table.from_arrays(
        [ids, pa.array(ts).cast(POINT_SCHEMA.field("ts").type), pa.array(values)], schema=POINT_SCHEMA
    )


def _home(root: Path, days: int) -> int:
    """A lake of ``days`` days of minutely points for 100 series, processed by the pipeline; rows."""
    lake = Lake(root / "lake")
    rows = 0
    for i, first in enumerate(range(0, days * 1440, 7 * 1440)):
        week = _week(first, min(7 * 1440, days * 1440 - first), i)
        lake.write("raw", DATASET, week)
        rows += week.num_rows
    with Catalog(f"sqlite:///{root}/catalog.db") as catalog:
        catalog.record_runs(
            [
                RunRecord(
                    f"d{d}",
                    "pipeline",
                    f"{DATASET}/dedup",
                    "success",
                    START + timedelta(days=d),
                    interval_start=START + timedelta(days=d),
                    interval_end=START + timedelta(days=d + 1),
                )
                for d in range(days + 1)
            ]
        )
    return rows


def _ctx(root: Path, now: datetime, layout: str = "date") -> RetentionContext:
    return RetentionContext(
        Lake(root / "lake", layout=layout),
        Catalog(f"sqlite:///{root}/catalog.db"),
        RetentionSettings(floor_days=1, training_days=0),
        str(root / "archive"),
        clock=lambda: to_us(now),
    )


def _copy(src: Path, dst: Path) -> None:
    """A fresh copy of a home: lake files hard-linked (retention moves files, never rewrites them)."""
    shutil.copytree(src / "lake", dst / "lake", copy_function=os.link)
    shutil.copy(src / "catalog.db", dst / "catalog.db")


def run(scale: float) -> list[Result]:
    """Measure a retention pass, the age-based delete against DuckDB, and planning 10,000 partitions."""
    days = max(4, round(365 * scale))
    now = START + timedelta(days=days, hours=12)  # cut-offs fall inside a day: partial partitions
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-retention-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        rows = _home(base, days)
        size = sum(f.stat().st_size for f in (base / "lake").rglob("*.parquet"))
        detail = f"{days} d x {N_SERIES} series minutely = {rows:,} rows, {size / 1e6:,.0f} MB"

        # -- a full pass: archive + two-level downsample
        work = Path(tmp) / "pass"
        _copy(base, work)
        ctx = _ctx(work, now)
        half = days / 2
        set_policy(ctx, {"name": "backup", "target": "raw", "action": "archive", "keep_days": half})
        set_policy(
            ctx,
            {
                "name": "ladder",
                "target": "raw",
                "action": "downsample",
                "keep_days": half,
                "levels": [{"every_s": 300, "keep_days": days * 0.75}, {"every_s": 3600, "keep_days": days}],
            },
        )
        t0 = time.perf_counter()
        plan = make_plan(ctx)
        plan_s = time.perf_counter() - t0
        result = apply_plan(ctx, plan)
        total_s = time.perf_counter() - t0
        ctx.catalog.close()
        rolled = result.rolled
        moved = result.rows + rolled
        results += [
            Result(
                "retention",
                "pass: plan + apply (archive, 2-level downsample)",
                total_s,
                "s",
                detail=f"{detail}; plan {plan_s:.2f} s, {len(plan.items)} items",
            ),
            Result(
                "retention",
                "pass: rows/s (archived or deleted + rolled up)",
                moved / total_s,
                "rows/s",
                detail=f"{result.rows:,} removed ({result.archived:,} archived), {rolled:,} rolled up",
            ),
            Result(
                "retention",
                "pass: bytes out of the lake",
                result.bytes / 1e6,
                "MB",
                detail="moved to the trash (undo window), zstd copy in the archive",
            ),
        ]

        # -- the same age-based delete against a DuckDB COPY ... PARTITION_BY rewrite
        cut = now - timedelta(days=half)
        copies = iter(range(100))
        lake_glob = str(base / "lake" / "raw" / DATASET / "*" / "*.parquet")

        def ours() -> None:
            home = Path(tmp) / f"ours{next(copies)}"
            _copy(base, home)
            octx = _ctx(home, now)
            try:
                set_policy(octx, {"name": "age", "target": "raw", "keep_days": half})
                done = apply_plan(octx, make_plan(octx))
                if not done.rows:
                    raise RuntimeError("the age-based delete removed nothing")
            finally:
                octx.catalog.close()

        def peer() -> None:
            out = Path(tmp) / f"peer{next(copies)}"
            con = duckdb.connect()
            try:
                con.execute("SET TimeZone = 'UTC'")
                con.execute(
                    f"COPY (SELECT series_id, ts, value, strftime(ts, '%Y-%m-%d') AS date "
                    f"FROM read_parquet('{lake_glob}') WHERE ts >= TIMESTAMPTZ '{cut.isoformat()}') "
                    f"TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))"
                )
            finally:
                con.close()

        ours_s, peer_s = interleaved(ours, peer, rounds=1)
        results.append(
            Result(
                "retention",
                "age-based delete (plan + apply)",
                ours_s,
                "s",
                peer="DuckDB COPY PARTITION_BY",
                ratio=peer_s / ours_s,
                detail=f"{detail}; DuckDB rewrite {peer_s:.2f} s",
            )
        )

    results += _planning()
    return results


def _planning(partitions: int = 10_000) -> list[Result]:
    """Plan over ``partitions`` hourly partitions (one small file each, hard links of one file)."""
    now = START + timedelta(hours=partitions)
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-plan-") as tmp:
        root = Path(tmp)
        lake = Lake(root / "lake", layout="hourly")
        (first,) = lake.write("raw", DATASET, _week(0, 60, 1).slice(0, 60))
        for h in range(1, partitions):
            moment = START + timedelta(hours=h)
            folder = (
                root
                / "lake"
                / "raw"
                / DATASET
                / f"year={moment:%Y}/month={moment:%m}/day={moment:%d}/hour={moment:%H}"
            )
            folder.mkdir(parents=True)
            # named as the lake names them: the row count is in the name
            os.link(first, folder / f"part-{h:020d}-00000000-n60.parquet")
        with Catalog(f"sqlite:///{root}/catalog.db") as catalog:
            catalog.record_runs(
                [
                    RunRecord(
                        "all",
                        "pipeline",
                        f"{DATASET}/dedup",
                        "success",
                        START,
                        interval_start=START,
                        interval_end=now + timedelta(days=1),
                    )
                ]
            )
        ctx = _ctx(root, now, "hourly")
        set_policy(ctx, {"name": "p", "target": "raw", "keep_days": 30})
        t0, c0 = time.perf_counter(), time.process_time()
        plan = make_plan(ctx, store=False)
        cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        make_plan(ctx, store=False)
        warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
        ctx.catalog.close()
    detail = f"{partitions:,} hourly partitions, {len(plan.items):,} planned; load {os.getloadavg()[0]:.1f}"
    cold_detail = f"{detail}; CPU of this process {cold_cpu:.2f} s"
    warm_detail = f"{detail}; CPU of this process {warm_cpu:.2f} s"
    return [
        Result(
            "retention",
            "plan 10,000 partitions (cold: counts from file names)",
            cold,
            "s",
            "<= 1",
            cold <= 1.0,
            cold_detail,
        ),
        Result("retention", "plan 10,000 partitions (warm)", warm, "s", "<= 1", warm <= 1.0, warm_detail),
    ]
