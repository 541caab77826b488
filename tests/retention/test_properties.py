"""Property: over random policies and data, after apply every row outside the policy is still there
byte for byte, and every row inside is gone — or archived, and restorable."""

from __future__ import annotations

import fnmatch
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.retention.conftest import NOW, mark_processed

from sparkhu.config import RetentionSettings
from sparkhu.retention import archive
from sparkhu.retention.apply import apply_plan
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import make_plan
from sparkhu.retention.policies import set_hold, set_policy
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.timeaxis import to_us

SERIES = ["a/x/p", "a/y/q", "b/x/r"]

batches = st.lists(
    st.tuples(
        st.sampled_from(SERIES),
        st.lists(st.integers(0, 10 * 24 * 60 - 1), min_size=1, max_size=30, unique=True),  # minutes back
        st.integers(0, 2**31),
    ),
    min_size=1,
    max_size=6,
)
policy = st.fixed_dictionaries(
    {
        "keep_hours": st.integers(24, 9 * 24),
        "series": st.sampled_from(["*", "a/*", "*/x/*", "b/x/r"]),
        "action": st.sampled_from(["delete", "archive"]),
        "hold": st.sampled_from([None, "a/y/q"]),
        "layout": st.sampled_from(["date", "hourly"]),
    }
)


def rows(table: pa.Table) -> set[tuple[str, int, float]]:
    return set(
        zip(
            table.column("series_id").cast(pa.string()).to_pylist(),
            table.column("ts").cast(pa.int64()).to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=batches, rule=policy)
def test_rows_outside_the_policy_stay_byte_for_byte_and_inside_go_or_are_archived(data, rule):
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        catalog = Catalog(f"sqlite:///{home}/catalog.db")
        ctx = RetentionContext(
            Lake(home / "lake", layout=rule["layout"]),
            catalog,
            RetentionSettings(floor_days=1, training_days=0),
            str(home / "archive"),
            clock=lambda: to_us(NOW),
        )
        try:
            for sid, minutes, seed in data:  # several files per partition, re-sent points included
                ts = to_us(NOW) - np.asarray(minutes, dtype=np.int64) * 60_000_000
                values = np.random.default_rng(seed).normal(size=len(minutes))
                ctx.lake.write("raw", "d", points(sid, ts, values))
            mark_processed(catalog, "d", (NOW - timedelta(days=11)).date(), NOW.date())
            before = rows(ctx.lake.read("raw", "d"))
            set_policy(
                ctx,
                {
                    "name": "p",
                    "target": "raw",
                    "keep_days": rule["keep_hours"] / 24,
                    "series": rule["series"],
                    "action": rule["action"],
                },
            )
            if rule["hold"]:
                set_hold(ctx, {"name": "h", "target": "raw", "series": rule["hold"]})
            cut = to_us(NOW - timedelta(hours=rule["keep_hours"]))

            def inside(r: tuple[str, int, float]) -> bool:
                return (
                    r[1] < cut
                    and fnmatch.fnmatchcase(r[0], rule["series"])
                    and not (rule["hold"] and fnmatch.fnmatchcase(r[0], rule["hold"]))
                )

            plan = make_plan(ctx)
            result = apply_plan(ctx, plan)
            after = rows(ctx.lake.read("raw", "d"))
            assert after == {r for r in before if not inside(r)}
            assert result.rows == plan.rows == len(before) - len(after)
            if rule["action"] == "archive":
                archived = set().union(*(rows(archive.read(ctx, m)) for m in archive.manifests(ctx)))
                assert archived == {r for r in before if inside(r)}
                archive.restore(ctx)
                assert rows(ctx.lake.read("raw", "d")) == before
        finally:
            catalog.close()
