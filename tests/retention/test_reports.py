"""The pipeline's report folders (``<home>/reports/<dataset>/<day>``) as a retention target."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkhu.errors import ConfigError
from sparkhu.retention.apply import apply_plan
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import make_plan
from sparkhu.retention.policies import parse_policy, set_hold, set_policy
from sparkhu.retention.storage import usage

# folders as the report writer names them (a day, or a chain interval first_last)
OLD = ["2024-02-01", "2024-02-20_2024-02-26"]
RECENT = ["2024-02-27", "2024-02-29", "2024-02-26_2024-03-03"]  # interval ends after the cut


@pytest.fixture
def reports(ctx: RetentionContext, tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    for dataset in ("meters", "other"):
        for day in [*OLD, *RECENT, "not-a-day"]:
            folder = root / dataset / day
            folder.mkdir(parents=True)
            (folder / "dedup.json").write_text(f'{{"dataset": "{dataset}", "day": "{day}"}}')
            (folder / "dedup.html").write_text(f"<html>{day}</html>")
            (folder / "index.html").write_text("<html>index</html>")
    ctx.reports = str(root)
    return root


def days(root: Path, dataset: str) -> list[str]:
    return sorted(p.name for p in (root / dataset).iterdir())


def test_old_report_days_are_planned_deleted_and_audited(ctx: RetentionContext, reports: Path) -> None:
    set_policy(ctx, {"name": "rep", "target": "reports", "match": "meters", "keep_days": 3})
    plan = make_plan(ctx)
    items = [i for i in plan.items if i.target == "reports"]
    assert [(i.name, i.key, i.action) for i in items] == [("meters", d, "delete") for d in OLD]
    sizes = [sum(f.stat().st_size for f in (reports / "meters" / d).iterdir()) for d in OLD]
    assert [i.bytes for i in items] == sizes and all(i.detail["files"] == 3 for i in items)
    result = apply_plan(ctx, plan)
    assert result.bytes == sum(sizes) and len(result.done) == len(plan.items)
    assert days(reports, "meters") == sorted([*RECENT, "not-a-day"])
    assert days(reports, "other") == sorted([*OLD, *RECENT, "not-a-day"])  # match: only meters
    shown = {u["name"]: u for u in usage(ctx) if u["target"] == "reports"}
    assert shown["meters"]["partitions"] == len(RECENT) + 1 and shown["meters"]["bytes"] > 0
    audited = {(a["action"], a["target"]) for a in ctx.catalog.audit_log(limit=50)}
    assert all(("delete", f"reports/meters/{d}") in audited for d in OLD), audited


def test_archived_report_days_are_copied_byte_for_byte(ctx: RetentionContext, reports: Path) -> None:
    set_policy(ctx, {"name": "rep", "target": "reports", "action": "archive", "keep_days": 3})
    before = {p: p.read_bytes() for d in OLD for p in (reports / "meters" / d).iterdir()}
    apply_plan(ctx, make_plan(ctx))
    for path, data in before.items():
        assert not path.exists()
        copy = Path(ctx.archive) / "reports" / path.relative_to(reports)
        assert copy.read_bytes() == data


def test_a_hold_and_the_floor_protect_reports(ctx: RetentionContext, reports: Path) -> None:
    set_hold(ctx, {"name": "case", "target": "reports", "match": "other", "reason": "audit"})
    set_policy(ctx, {"name": "rep", "target": "reports", "keep_days": 3})
    plan = make_plan(ctx)
    assert {i.name for i in plan.items if i.target == "reports"} == {"meters"}
    assert any(p["what"] == "reports/other" and p["reason"] == "legal hold" for p in plan.protected)
    apply_plan(ctx, plan)
    assert days(reports, "other") == sorted([*OLD, *RECENT, "not-a-day"])


def test_an_unknown_target_names_the_field() -> None:
    with pytest.raises(ConfigError, match="target"):
        parse_policy({"name": "x", "target": "report", "keep_days": 3}, floor_days=1)
