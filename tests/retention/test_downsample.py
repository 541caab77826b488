"""The downsample ladder: correct buckets, each level's own retention, and no row deleted before a
committed level covers it — also while points keep arriving."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import numpy as np
import pyarrow as pa
from tests.retention.conftest import DATASET, NOW, SERIES, all_rows, mark_processed, minutely

from sparkhu.retention.apply import apply_plan
from sparkhu.retention.downsample import read_rollup, rollup
from sparkhu.retention.plan import make_plan
from sparkhu.retention.policies import set_policy
from sparkhu.series import points
from sparkhu.timeaxis import to_us

START = NOW - timedelta(days=6)
LADDER = {
    "name": "ladder",
    "target": "raw",
    "action": "downsample",
    "keep_days": 2,
    "levels": [{"every_s": 300, "keep_days": 4}, {"every_s": 3600, "keep_days": 30}],
}


def buckets(rows, every_s: int) -> Counter:
    return Counter((s, t // (every_s * 1_000_000) * every_s * 1_000_000) for s, t, _ in rows)


def as_counts(table: pa.Table) -> Counter:
    return Counter(
        {
            (s, t): c
            for s, t, c in zip(
                table.column("series_id").to_pylist(),
                table.column("ts").cast(pa.int64()).to_pylist(),
                table.column("count").to_pylist(),
                strict=True,
            )
        }
    )


def test_rollup_matches_numpy_per_bucket():
    rng = np.random.default_rng(3)
    ts = np.sort(rng.choice(3600, 500, replace=False)).astype(np.int64) * 1_000_000
    values = rng.normal(size=500)
    table = rollup(points("a/b/c", ts, values), 600)
    for row in table.to_pylist():
        start = int(row["ts"].timestamp()) * 1_000_000
        sel = (ts >= start) & (ts < start + 600_000_000)
        assert row["count"] == sel.sum()
        assert np.isclose(row["mean"], values[sel].mean()) and row["min"] == values[sel].min()
        assert row["max"] == values[sel].max() and row["last"] == values[sel][-1]
    coarse = rollup(table, 1800, from_rollup=True)
    assert coarse.column("count").to_pylist() == [
        int(((ts >= a) & (ts < a + 1_800_000_000)).sum()) for a in (0, 1_800_000_000)
    ]
    assert np.isclose(coarse.column("mean").to_numpy()[0], values[ts < 1_800_000_000].mean())


def test_ladder_covers_every_deleted_row_and_each_level_keeps_its_own_age(ctx):
    ctx.lake.write("raw", DATASET, minutely(START, 6))
    mark_processed(ctx.catalog, DATASET, START.date(), NOW.date())
    before = all_rows(ctx)
    set_policy(ctx, LADDER)
    plan = make_plan(ctx)
    assert [i.detail["every_s"] for i in plan.items if i.action == "downsample"] == [300, 3600]
    apply_plan(ctx, plan)
    apply_plan(ctx, make_plan(ctx))  # a level's own retention acts once the level exists
    after = all_rows(ctx)
    cut = to_us(NOW - timedelta(days=2))
    assert after == {r for r in before if r[1] >= cut}
    five = as_counts(read_rollup(ctx, DATASET, 300))
    hour = as_counts(read_rollup(ctx, DATASET, 3600))
    assert hour == buckets(before, 3600)  # the hourly level keeps 30 days: all of it
    level1_cut = to_us(NOW - timedelta(days=4))
    assert five == {k: v for k, v in buckets(before, 300).items() if k[1] >= level1_cut}


def test_raw_is_kept_until_a_level_covers_it(ctx):
    ctx.lake.write("raw", DATASET, minutely(START, 6))
    mark_processed(ctx.catalog, DATASET, START.date(), NOW.date())
    set_policy(ctx, LADDER)
    plan = make_plan(ctx)
    # the plan counts on its own rollups; were they missing, nothing raw would go
    raw_items = [i for i in plan.items if i.target == "raw" and i.action == "delete"]
    assert raw_items
    rollups = [i for i in plan.items if i.action == "downsample"]
    plan.items = [i for i in plan.items if i not in rollups]
    result = apply_plan(ctx, plan)
    assert result.done == [] and all("not covered" in s["reason"] for s in result.skipped)


def test_invariant_under_concurrent_ingest(ctx):
    ctx.lake.write("raw", DATASET, minutely(START, 6))
    mark_processed(ctx.catalog, DATASET, START.date(), NOW.date())
    set_policy(ctx, LADDER)
    written = set(all_rows(ctx))
    stop = threading.Event()
    late_batches: list[pa.Table] = []
    order = np.random.default_rng(0).permutation(4 * 1440).astype(np.int64)

    def ingest() -> None:
        n = 0
        while not stop.is_set() and n < 40:
            # late points at :30 of random minutes of the old days, into their (old) partitions
            rng = np.random.default_rng(n)
            minutes = order[n * 20 : (n + 1) * 20]  # distinct points: a re-sent one is a known limit
            ts = to_us(START) + minutes * 60_000_000 + 30_000_000
            batch = points(SERIES[n % 3], ts, rng.normal(size=20).round(3))
            ctx.lake.write("raw", DATASET, batch)
            late_batches.append(batch)
            n += 1

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        apply_plan(ctx, make_plan(ctx))
    finally:
        stop.set()
        writer.join()
    for batch in late_batches:  # a later batch may re-send a point: one row per (series, ts)
        written |= set(
            zip(
                batch.column("series_id").cast(pa.string()).to_pylist(),
                batch.column("ts").cast(pa.int64()).to_pylist(),
                [0.0] * batch.num_rows,
                strict=True,
            )
        )
    written = {(s, t, 0.0) for s, t, _ in written}
    hourly = buckets(written, 3600)
    remaining = buckets(all_rows(ctx), 3600)
    covered = as_counts(read_rollup(ctx, DATASET, 3600))
    for bucket, total in hourly.items():
        assert total - remaining.get(bucket, 0) <= covered.get(bucket, 0), bucket  # nothing lost
    apply_plan(ctx, make_plan(ctx))  # a quiet pass rolls up the late files, then lets them go
    assert as_counts(read_rollup(ctx, DATASET, 3600)) == hourly
    cut = to_us(NOW - timedelta(days=2))
    assert all(r[1] >= cut for r in all_rows(ctx))
