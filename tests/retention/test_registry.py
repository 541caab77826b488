"""Registry versions: keep the newest N, never an aliased one (champion, challenger, previous)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.models import make_model
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.retention.apply import apply_plan
from sparkhu.retention.plan import make_plan
from sparkhu.retention.policies import set_hold, set_policy

Y = 100.0 + 10.0 * np.sin(np.arange(60) / 5.0)


def test_keep_n_versions_but_never_an_aliased_one(ctx, tmp_path: Path) -> None:
    registry = ModelRegistry(f"sqlite:///{tmp_path}/mlflow.db", artifact_root=tmp_path / "art")
    ctx.registry = registry
    first = registry.log_training("a/b/c", make_model("ses", alpha=0.5).fit(Y), alias="champion")
    registry.log_training("a/b/c", make_model("ses", alpha=0.7).fit(Y), alias=None)
    registry.log_training("a/b/c", make_model("ses", alpha=0.8).fit(Y), alias=None)
    newest = registry.log_training("a/b/c", make_model("ses", alpha=0.9).fit(Y))  # challenger
    registry.log_training("x/y/z", make_model("ses").fit(Y), alias=None)
    registry.log_training("x/y/z", make_model("ses").fit(Y), alias=None)
    set_policy(ctx, {"name": "models", "target": "registry", "keep_versions": 1})
    set_hold(ctx, {"name": "keep-xyz", "target": "registry", "match": "*x.y.z"})
    plan = make_plan(ctx)
    assert sorted(i.detail["version"] for i in plan.items) == [2, 3]  # 4 the newest; 1 the champion
    assert any("aliased champion" in p["reason"] for p in plan.protected)
    apply_plan(ctx, plan)
    versions = {v.name: sorted(x.version for x in registry.versions(v.name)) for v in registry.versions()}
    assert versions == {"sparkhu.a.b.c": [first.version, newest.version], "sparkhu.x.y.z": [1, 2]}
    with pytest.raises(ForecastError, match="champion"):
        registry.delete_version("sparkhu.a.b.c", first.version)
