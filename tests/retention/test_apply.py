"""Plan and apply over a real lake and catalog: each guarantee of retention, one test each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.retention.conftest import DATASET, NOW, SERIES, all_rows, mark_processed, minutely

from sparkhu.errors import ConfigError, InputError, NotFoundError
from sparkhu.retention import archive
from sparkhu.retention.apply import apply_plan, undo
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import load_plan, make_plan
from sparkhu.retention.policies import parse_policy, set_hold, set_policy
from sparkhu.timeaxis import to_us

pytestmark = pytest.mark.integration

START = NOW - timedelta(days=10)


def seed(ctx: RetentionContext, processed_days: int = 10) -> set:
    ctx.lake.write("raw", DATASET, minutely(START, 10))
    if processed_days:
        mark_processed(
            ctx.catalog, DATASET, START.date(), (START + timedelta(days=processed_days - 1)).date()
        )
    return all_rows(ctx)


def test_age_delete_is_exact_at_the_boundary_and_keeps_the_rest_byte_for_byte(ctx):
    before = seed(ctx)
    set_policy(ctx, {"name": "raw-5d", "target": "raw", "keep_days": 5.25})
    plan = make_plan(ctx)
    cut = to_us(NOW - timedelta(days=5.25))
    inside = {r for r in before if r[1] < cut}
    assert plan.rows == len(inside) and plan.partitions == 6  # 5 whole days + a quarter of one
    assert {i.mode for i in plan.items} == {"drop", "trim"}
    result = apply_plan(ctx, load_plan(ctx, plan.id))
    assert result.rows == plan.rows
    assert all_rows(ctx) == before - inside


def test_nothing_unprocessed_is_deleted(ctx):
    before = seed(ctx, processed_days=3)  # the pipeline processed only the first 3 days
    set_policy(ctx, {"name": "raw-2d", "target": "raw", "keep_days": 2})
    plan = make_plan(ctx)
    assert {i.key for i in plan.items} == {f"date={(START + timedelta(days=d)).date()}" for d in range(3)}
    assert any("not yet processed" in p["reason"] for p in plan.protected)
    apply_plan(ctx, plan)
    first_unprocessed = (START + timedelta(days=3)).replace(hour=0)
    assert min(r[1] for r in all_rows(ctx)) == to_us(first_unprocessed)
    assert len(all_rows(ctx)) < len(before)


def test_floor_and_training_window_hold_whatever_the_policy(ctx):
    seed(ctx)
    with pytest.raises(InputError, match=r"keep_days.*floor"):
        set_policy(ctx, {"name": "too-short", "target": "raw", "keep_days": 0.5})
    ctx.catalog.register_model("m", "1", SERIES[0], "models:/m/1", {"mae": 1.0})  # a live model
    set_policy(ctx, {"name": "raw-2d", "target": "raw", "keep_days": 2})
    make = make_plan(ctx)
    apply_plan(ctx, make)
    assert min(r[1] for r in all_rows(ctx)) == to_us(NOW - timedelta(days=7))  # training_days = 7
    assert any("training window" in p["reason"] for p in make.protected)


def test_legal_hold_pins_a_dataset_or_a_series(ctx):
    before = seed(ctx)
    set_policy(ctx, {"name": "raw-2d", "target": "raw", "keep_days": 2})
    set_hold(
        ctx, {"name": "case-1", "target": "raw", "match": DATASET, "series": SERIES[0], "reason": "audit"}
    )
    apply_plan(ctx, make_plan(ctx))
    after = all_rows(ctx)
    cut = to_us(NOW - timedelta(days=2))
    assert {r for r in before if r[0] == SERIES[0]} <= after
    assert not any(r[1] < cut for r in after if r[0] != SERIES[0])
    set_hold(ctx, {"name": "case-2", "target": "raw", "match": "*"})
    plan = make_plan(ctx)
    assert plan.items == [] and any(p["reason"] == "legal hold" for p in plan.protected)


def test_hold_placed_after_planning_stops_apply(ctx):
    before = seed(ctx)
    set_policy(ctx, {"name": "raw-2d", "target": "raw", "keep_days": 2})
    plan = make_plan(ctx)
    set_hold(ctx, {"name": "late", "target": "raw"})
    result = apply_plan(ctx, plan)
    assert result.done == [] and all(s["reason"].startswith("legal hold") for s in result.skipped)
    assert all_rows(ctx) == before


def test_archive_then_restore_gives_back_every_row(ctx):
    before = seed(ctx)
    set_policy(ctx, {"name": "backup", "target": "raw", "action": "archive", "keep_days": 4.25})
    result = apply_plan(ctx, make_plan(ctx))
    assert result.archived == result.rows > 0
    manifests = archive.manifests(ctx)
    assert sum(m["rows"] for m in manifests) == result.rows and all(m["sha256"] for m in manifests)
    assert len(all_rows(ctx)) == len(before) - result.rows
    archives, rows = archive.restore(ctx, zone="raw", dataset=DATASET)
    assert (archives, rows) == (len(manifests), result.rows)
    assert all_rows(ctx) == before


def test_soft_delete_then_undo(ctx):
    before = seed(ctx)
    set_policy(ctx, {"name": "raw-3d", "target": "raw", "keep_days": 3.5})
    result = apply_plan(ctx, make_plan(ctx))
    assert all_rows(ctx) != before
    assert undo(ctx, result.run_id) > 0
    assert all_rows(ctx) == before
    with pytest.raises(NotFoundError, match="nothing in the trash"):
        undo(ctx, result.run_id)


def test_trash_is_purged_after_the_window(ctx):
    seed(ctx)
    set_policy(ctx, {"name": "raw-3d", "target": "raw", "keep_days": 3})
    result = apply_plan(ctx, make_plan(ctx))
    later = RetentionContext(
        ctx.lake, ctx.catalog, ctx.settings, ctx.archive, clock=lambda: to_us(NOW + timedelta(days=8))
    )
    purge = [i for i in make_plan(later).items if i.mode == "purge"]
    assert [i.name for i in purge] == [result.run_id]
    apply_plan(later, make_plan(later))
    with pytest.raises(NotFoundError):
        undo(later, result.run_id)


def test_apply_executes_exactly_the_plan_not_files_written_since(ctx):
    seed(ctx)
    set_policy(ctx, {"name": "raw-5d", "target": "raw", "keep_days": 5})
    plan = make_plan(ctx)
    late = minutely(START, 1, seed=9).slice(0, 10)  # late points into the oldest day, after planning
    ctx.lake.write("raw", DATASET, late)
    result = apply_plan(ctx, plan)
    assert result.rows == plan.rows
    left = all_rows(ctx)
    assert {(r[0], r[1]) for r in left if r[1] < to_us(START + timedelta(days=1))} == {
        (s, t)
        for s, t in zip(
            late.column("series_id").to_pylist(), late.column("ts").cast("int64").to_pylist(), strict=True
        )
    }


def test_quota_drops_the_oldest_partitions_until_under(ctx):
    seed(ctx)
    total = sum(p.bytes for p in ctx.lake.partitions("raw", DATASET))
    set_policy(ctx, {"name": "quota", "target": "raw", "max_bytes": total // 2})
    plan = make_plan(ctx)
    apply_plan(ctx, plan)
    left = ctx.lake.partitions("raw", DATASET)
    assert sum(p.bytes for p in left) <= total // 2
    assert [p.key for p in left] == sorted(p.key for p in left)[-len(left) :]
    assert min(p.start for p in left) > START


def test_per_series_pattern_trims_only_those_series(ctx):
    before = seed(ctx)
    set_policy(ctx, {"name": "home", "target": "raw", "series": "home/*", "keep_days": 2})
    apply_plan(ctx, make_plan(ctx))
    cut = to_us(NOW - timedelta(days=2))
    assert all_rows(ctx) == {r for r in before if not (r[0].startswith("home/") and r[1] < cut)}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "target": "raw", "keep_days": -1}, "keep_days"),
        ({"name": "x", "target": "lake", "keep_days": 5}, "target"),
        ({"name": "x", "target": "raw", "keep_days": 0.2}, "keep_days"),
        ({"name": "x y", "target": "raw", "keep_days": 5}, "name"),
        ({"name": "x", "target": "raw", "keep_days": 5, "start_date": "yesterday"}, "start_date"),
        ({"name": "x", "target": "raw", "action": "downsample"}, "levels"),
    ],
)
def test_bad_policy_is_one_error_naming_the_field(body, field):
    with pytest.raises(ConfigError, match=field):
        parse_policy(body, floor_days=1)


def test_config_file_policies_are_validated_with_the_key(tmp_path):
    from sparkhu.config import Settings

    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        '[retention]\nfloor_days = 3\n[[retention.policies]]\nname = "a"\ntarget = "raw"\nkeep_days = 2\n'
    )
    with pytest.raises(ConfigError, match=r"retention.policies.*keep_days.*floor"):
        Settings.load(toml_path=toml, env={})
    toml.write_text('[[retention.policies]]\nname = "a"\ntarget = "raw"\nkeep_days = -2\n')
    with pytest.raises(ConfigError, match=r"retention.policies.0.keep_days"):
        Settings.load(toml_path=toml, env={})
    toml.write_text('[[retention.policies]]\nname = "a"\ntarget = "disk"\n')
    with pytest.raises(ConfigError, match=r"retention.policies.0.target"):
        Settings.load(toml_path=toml, env={})


def test_start_date_bounds_the_cutoff_as_the_original_backup(ctx):
    before = seed(ctx)
    start = (NOW - timedelta(days=3)).date().isoformat()
    set_policy(
        ctx, {"name": "backup", "target": "raw", "action": "archive", "keep_days": 8, "start_date": start}
    )
    apply_plan(ctx, make_plan(ctx))
    cut = to_us(datetime.fromisoformat(start).replace(tzinfo=UTC))
    assert all_rows(ctx) == {r for r in before if r[1] >= cut}


def test_the_partition_records_and_the_lineage_follow_retention(ctx):
    from sparkhu.metadata.lineage import lineage
    from sparkhu.storage.catalog import SeriesInfo

    def records() -> dict[str, tuple[int, int, int]]:
        return {
            p["key"]: (p["files"], p["rows"], p["bytes"])
            for p in ctx.catalog.list_partitions("raw", "home_power")
        }

    def on_disk() -> dict[str, tuple[int, int, int]]:
        return {p.key: (p.files, p.rows, p.bytes) for p in ctx.lake.partitions("raw", "home_power")}

    ctx.lake.on_write = ctx.catalog.record_writes
    ctx.lake.write("raw", "home_power", minutely(START, 10, ["home/power/a"]))
    ctx.catalog.upsert_series(SeriesInfo.of("home/power/a"))
    mark_processed(ctx.catalog, "home_power", START.date(), (START + timedelta(days=9)).date())
    before = records()
    set_policy(ctx, {"name": "raw-5d", "target": "raw", "keep_days": 5.25})
    result = apply_plan(ctx, make_plan(ctx))
    after = ctx.catalog.list_partitions("raw", "home_power")
    assert records() == on_disk() != before  # dropped days forgotten, the trimmed one recounted
    trimmed = next(p for p in after if p["run_id"] == f"retention:{result.run_id}")
    assert trimmed["first_ts"] >= NOW - timedelta(days=5.25) and trimmed["rows"] < before[trimmed["key"]][1]
    graph = lineage(ctx.catalog, "home/power/a")
    applied = graph.of_kind("retention")
    assert {n.label.split()[0] for n in applied} == {"delete"} and len(applied) == 6
    assert all(
        ("dataset:raw/home_power", n.id, "retains") in {(e.source, e.target, e.relation) for e in graph.edges}
        for n in applied
    )
    undo(ctx, result.run_id)  # the files come back (beside the trimmed file, equal values)
    assert records() == on_disk() and set(records()) == set(before)
    back = {p["key"]: p for p in ctx.catalog.list_partitions("raw", "home_power")}
    assert back[trimmed["key"]]["first_ts"] < trimmed["first_ts"]
