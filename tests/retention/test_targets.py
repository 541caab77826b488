"""Retention beyond the lake: the SQLite bus, the prediction store, run history and archive disposal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.retention.conftest import DATASET, NOW, mark_processed, minutely

from sparkhu.retention import archive
from sparkhu.retention.apply import apply_plan, trash_runs, undo
from sparkhu.retention.plan import make_plan
from sparkhu.retention.policies import set_hold, set_policy
from sparkhu.storage.catalog import RunRecord
from sparkhu.storage.predictions import FORECAST_SCHEMA, PredictionStore
from sparkhu.stream.sqlite import SqliteBus
from sparkhu.timeaxis import to_us

pytestmark = pytest.mark.integration


def test_bus_messages_go_only_once_every_group_has_read_them(ctx, tmp_path):
    bus = SqliteBus(f"sqlite:///{tmp_path}/bus.db")
    bus.create_topic("t", partitions=1)
    bus.create_topic("held", partitions=1)
    bus.produce("t", [(None, b"%d" % i) for i in range(10)])
    bus.produce("held", [(None, b"x")])
    with bus.consumer("lake", ["t"]) as consumer:
        got = []
        while len(got) < 6:
            got += consumer.poll(6 - len(got), timeout=1.0)
        consumer.commit(got)
    ctx.bus = bus
    ctx.clock = lambda: to_us(datetime.now(UTC) + timedelta(days=10))  # the messages are 10 days old
    set_policy(ctx, {"name": "bus", "target": "bus", "keep_days": 3})
    set_hold(ctx, {"name": "h", "target": "bus", "match": "held"})
    plan = make_plan(ctx)
    assert [(i.name, i.rows) for i in plan.items] == [("t", 6)]  # 4 unread messages stay
    apply_plan(ctx, plan)
    assert bus.delete_before("t", 2**62, dry_run=True) == 4
    assert bus.delete_before("held", 2**62, dry_run=True) == 1
    bus.close()


def forecasts(series_id: str, origin: datetime, n: int) -> pa.Table:
    target = to_us(origin) + np.arange(1, n + 1, dtype=np.int64) * 3_600_000_000
    ts = FORECAST_SCHEMA.field("origin_ts").type
    return pa.Table.from_arrays(
        [
            pa.array([series_id] * n),
            pa.array(np.full(n, to_us(origin))).cast(ts),
            pa.array(target).cast(ts),
            pa.array(np.arange(1, n + 1, dtype=np.int32)),
            pa.array(np.ones(n)),
            pa.array(np.zeros(n)),
            pa.array(np.full(n, 2.0)),
            pa.array(["ses"] * n),
        ],
        schema=FORECAST_SCHEMA,
    )


def test_prediction_store_raw_and_blended_have_their_own_policies(ctx):
    store = PredictionStore(ctx.catalog.engine)
    store.write(forecasts("a/b/c", NOW - timedelta(days=10), 24 * 8))  # targets 10 .. 2 days ago
    ctx.predictions = store
    set_policy(ctx, {"name": "raw", "target": "predictions.raw", "keep_days": 5})
    plan = make_plan(ctx)
    assert [(i.target, i.rows) for i in plan.items] == [("predictions.raw", 24 * 5 - 1)]  # target < cut
    apply_plan(ctx, plan)
    cut = NOW - timedelta(days=5)
    assert store.raw("a/b/c").column("target_ts").to_pylist()[0] >= cut
    assert store.blended("a/b/c").num_rows == 24 * 8  # blended: no policy, all kept


def test_run_history_keeps_the_pipelines_records(ctx):
    old = NOW - timedelta(days=40)
    ctx.catalog.record_runs(
        [RunRecord(f"t{i}", "train", "ses", "success", old, finished_at=old) for i in range(5)]
        + [RunRecord("r", "train", "ses", "running", old)]
    )
    mark_processed(ctx.catalog, DATASET, old.date(), old.date())
    set_policy(ctx, {"name": "runs", "target": "runs", "keep_days": 30})
    apply_plan(ctx, make_plan(ctx))
    left = {(r.kind, r.status) for r in ctx.catalog.runs(limit=100)}
    assert left == {("train", "running"), ("pipeline", "success")}


def test_prediction_and_run_deletions_can_be_undone_within_the_window(ctx):
    store = PredictionStore(ctx.catalog.engine)
    store.write(forecasts("a/b/c", NOW - timedelta(days=10), 24 * 8))
    ctx.predictions = store
    old = NOW - timedelta(days=40)
    ctx.catalog.record_runs(
        [
            RunRecord(f"t{i}", "train", "ses", "success", old, finished_at=old, params={"i": i})
            for i in range(3)
        ]
    )
    raw_before, blended_before = store.raw("a/b/c"), store.blended("a/b/c")
    runs_before = sorted((r.run_id, r.params["i"], r.started_at) for r in ctx.catalog.runs(limit=100))
    for body in (
        {"name": "raw", "target": "predictions.raw", "keep_days": 5},
        {"name": "blended", "target": "predictions.blended", "keep_days": 5},
        {"name": "runs", "target": "runs", "keep_days": 30},
    ):
        set_policy(ctx, body)
    result = apply_plan(ctx, make_plan(ctx))
    assert store.raw("a/b/c").num_rows < raw_before.num_rows and not ctx.catalog.runs(limit=100)
    assert [t["run"] for t in trash_runs(ctx)] == [result.run_id]
    undo(ctx, result.run_id)
    assert store.raw("a/b/c").equals(raw_before) and store.blended("a/b/c").equals(blended_before)
    runs_after = sorted((r.run_id, r.params["i"], r.started_at) for r in ctx.catalog.runs(limit=100))
    assert runs_after == runs_before
    assert trash_runs(ctx) == []
    # past the soft-delete window the trash is purged and undo has nothing left
    result = apply_plan(ctx, make_plan(ctx))
    ctx.clock = lambda: to_us(NOW + timedelta(days=ctx.settings.soft_delete_days + 1))
    purge = [i for i in make_plan(ctx).items if i.mode == "purge"]
    assert [i.name for i in purge] == [result.run_id]


def test_disposal_deletes_old_archives_with_their_manifests(ctx):
    ctx.lake.write("raw", DATASET, minutely(NOW - timedelta(days=10), 10, every_s=3600))
    mark_processed(ctx.catalog, DATASET, (NOW - timedelta(days=10)).date(), NOW.date())
    set_policy(ctx, {"name": "backup", "target": "raw", "action": "archive", "keep_days": 3})
    apply_plan(ctx, make_plan(ctx))
    before = archive.manifests(ctx)
    set_policy(ctx, {"name": "disposal", "target": "archive", "keep_days": 6})
    plan = make_plan(ctx)
    disposed = [i for i in plan.items if i.mode == "dispose"]
    assert disposed and all(
        i.detail["manifest"]["last_us"] < to_us(NOW - timedelta(days=6)) for i in disposed
    )
    apply_plan(ctx, plan)
    after = archive.manifests(ctx)
    assert len(after) == len(before) - len(disposed)
    assert all(m["last_us"] >= to_us(NOW - timedelta(days=6)) for m in after)
    root = archive.ArchiveRoot.open(ctx.archive)
    files = {str(p.relative_to(root.base)) for p in Path(root.base).rglob("*.parquet")}
    assert files == {m["file"] for m in after}
