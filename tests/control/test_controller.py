"""The controller end to end, headless: real bus, predictor, champion server, registry, lake and catalog.

A level shift (10 → 20) separates a model that follows it (SES, alpha 0.9) from one that barely
moves (SES, alpha 0.02): the gate must promote the first over the second, reject the reverse, and
the watch must roll back a promotion of the second.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.control.conftest import Live, make_live

from sparkhu.app.runtime import Runtime
from sparkhu.config import TrainingPolicy
from sparkhu.control import moves
from sparkhu.errors import InputError
from sparkhu.forecast.models import make_model
from sparkhu.forecast.registry import registered_name

RNG = np.random.default_rng(7)
BEFORE = 10.0 + RNG.normal(0, 0.1, 30)
AFTER = 20.0 + RNG.normal(0, 0.1, 60)


def _policy(name: str, **fields: object) -> TrainingPolicy:
    gate = {"margin": 0.05, "min_points": 12}
    return TrainingPolicy.of(
        {"name": name, "series": f"ctl/{name}/*", "drift": False, "gate": gate, **fields}
    )


POLICIES = [
    *(_policy(name) for name in ("better", "worse", "degrades", "retrain", "first")),
    _policy("fails", engine="spark"),  # the engine is local: its training fails
    # triggers only (their training fails fast for want of Spark, which these tests do not need)
    _policy("sched", engine="spark", schedule="* * * * *", min_interval="10min", budget_per_hour=1),
    _policy("drifts", engine="spark", drift=True, min_interval="10min"),
    _policy("chain", drift=True, window="1d"),
]


def _live(runtime: Runtime, name: str) -> Live:
    live = make_live(runtime, name, POLICIES)
    live.feed(BEFORE)
    return live


def _actions(live: Live) -> list[dict]:
    return live.runtime.catalog.actions(series_id=live.series_id)


def _audit(live: Live, action: str) -> list[dict]:
    return [
        e
        for e in live.runtime.catalog.audit_log(limit=500)
        if e["action"] == action and e["target"] == live.series_id
    ]


def _history(live: Live) -> list[tuple[str, int, int | None]]:
    rows = live.runtime.catalog.champion_history(registered_name(live.series_id))
    return [(r["event"], r["version"], r["previous_version"]) for r in rows]


def test_a_better_challenger_is_promoted_after_shadow_then_confirmed(runtime: Runtime) -> None:
    live = _live(runtime, "better")
    slow = live.register(make_model("ses", alpha=0.02).fit(BEFORE), "champion")
    live.serve()
    quick = live.register(make_model("ses", alpha=0.9).fit(BEFORE), "challenger")
    moves.adopt_challenger(
        runtime.catalog, runtime.registry, live.series_id, quick, policy=live.policy, actor="test"
    )
    live.step()  # queues the shadow
    assert live.predictor.shadows[live.series_id].keys() == {f"ses@v{quick}"}
    live.feed(AFTER[:5])
    assert live.step() == []  # fewer than min_points shared targets observed: waiting
    live.feed(AFTER[5:25])
    moved = [state for _, state in live.step()]
    assert moved == ["promoting", "swapping"]  # promoted; the predictor has not swapped it in yet
    assert runtime.registry.aliases(live.series_id)["champion"] == quick
    decided = _audit(live, "promotion.decided")[0]["detail"]
    assert decided["points"] == 12
    assert decided["challenger_mae"] <= 0.95 * decided["champion_mae"]
    live.serve()  # the champion server hot-swaps the new champion
    assert [state for _, state in live.step()] == ["watching"]
    assert live.predictor.shadows[live.series_id].keys() == {f"ses@v{slow}"}  # the old one, watched
    live.feed(AFTER[25:45])
    assert [state for _, state in live.step()] == ["promoted"]
    assert live.series_id not in live.predictor.shadows
    assert _history(live) == [("train", slow, None), ("promote", quick, slow)]
    assert _actions(live)[0]["state"] == "promoted"
    # raw forecasts of the shadows were stored but never blended: the blended values follow the champions
    models = set(runtime.predictions.raw(live.series_id).column("model").to_pylist())
    assert {f"ses@v{quick}/shadow", f"ses@v{slow}/shadow"} <= models


def test_a_worse_challenger_is_not_promoted(runtime: Runtime) -> None:
    live = _live(runtime, "worse")
    quick = live.register(make_model("ses", alpha=0.9).fit(BEFORE), "champion")
    live.serve()
    slow = live.register(make_model("ses", alpha=0.02).fit(BEFORE), "challenger")
    moves.adopt_challenger(
        runtime.catalog, runtime.registry, live.series_id, slow, policy=live.policy, actor="test"
    )
    live.step()
    live.feed(AFTER[:25])
    assert [state for _, state in live.step()] == ["rejected"]
    aliases = runtime.registry.aliases(live.series_id)
    assert aliases["champion"] == quick and "challenger" not in aliases
    rejected = _audit(live, "promotion.rejected")[0]["detail"]
    assert rejected["numbers"]["challenger_mae"] > rejected["numbers"]["champion_mae"]
    assert "is not 5% under the champion's" in rejected["reason"]
    assert _history(live) == [("train", quick, None)]
    assert live.series_id not in live.predictor.shadows
    assert live.predictor.labels[live.series_id] == f"ses@v{quick}"


def test_a_promotion_that_degrades_is_rolled_back(runtime: Runtime) -> None:
    live = _live(runtime, "degrades")
    quick = live.register(make_model("ses", alpha=0.9).fit(BEFORE), "champion")
    live.serve()
    slow = live.register(make_model("ses", alpha=0.02).fit(BEFORE), "challenger")
    moves.promote(runtime.catalog, runtime.registry, live.series_id, slow, actor="test", policies=POLICIES)
    live.serve()
    assert [state for _, state in live.step()] == ["watching"]
    live.feed(AFTER[:25])
    assert [state for _, state in live.step()] == ["rolling_back", "rolled_back"]
    assert runtime.registry.aliases(live.series_id)["champion"] == quick
    assert _history(live) == [("train", quick, None), ("promote", slow, quick), ("rollback", quick, slow)]
    rollback = runtime.catalog.champion_history(registered_name(live.series_id))[-1]
    assert rollback["numbers"]["new_mae"] > 1.1 * rollback["numbers"]["old_mae"]
    live.serve()
    assert live.predictor.labels[live.series_id] == f"ses@v{quick}"
    # one step back by hand: the champion before the current one
    moves.rollback(runtime.catalog, runtime.registry, live.series_id, actor="test")
    assert runtime.registry.aliases(live.series_id)["champion"] == slow


def test_retrain_now_trains_a_challenger_on_the_lake_and_shadows_it(runtime: Runtime) -> None:
    live = _live(runtime, "retrain")
    champion = live.register(make_model("ses", alpha=0.9).fit(BEFORE), "champion")
    live.serve()
    cycle = moves.retrain_now(runtime.catalog, live.series_id, actor="test", policies=POLICIES)
    with pytest.raises(InputError, match=r"has a cycle in progress \(#\d+, planned\)"):
        moves.retrain_now(runtime.catalog, live.series_id, actor="test", policies=POLICIES)
    assert live.step() == [(cycle, "shadowing")]  # trained by sparkhu train's path, registered, shadowed
    action = runtime.catalog.action(cycle)
    assert action["challenger_version"] > champion
    assert runtime.registry.aliases(live.series_id) == {
        "champion": champion,
        "challenger": action["challenger_version"],
    }
    assert live.predictor.shadows[live.series_id].keys() == {
        f"{_kind(runtime, live)}@v{action['challenger_version']}"
    }
    assert [e["detail"]["cycle"] for e in _audit(live, "challenger.registered")] == [cycle]


def _kind(runtime: Runtime, live: Live) -> str:
    return runtime.registry.served(live.series_id, "challenger").forecaster.name


def test_a_failed_training_leaves_the_champion_serving(runtime: Runtime) -> None:
    live = _live(runtime, "fails")
    champion = live.register(make_model("ses", alpha=0.9).fit(BEFORE), "champion")
    live.serve()
    cycle = moves.retrain_now(runtime.catalog, live.series_id, actor="test", policies=POLICIES)
    assert (cycle, "failed") in live.step()
    assert runtime.registry.aliases(live.series_id) == {"champion": champion}
    failed = _audit(live, "retrain.failed")[0]["detail"]
    assert "trains on Spark but [engine] uri is 'local'" in failed["error"]
    live.feed(AFTER[:3])
    assert live.predictor.labels[live.series_id] == f"ses@v{champion}"


def _cycles(live: Live) -> list[tuple[str, str]]:
    return [(a["trigger"], a["state"]) for a in _actions(live)][::-1]


def test_a_schedule_triggers_within_the_minimum_interval_and_the_hourly_budget(runtime: Runtime) -> None:
    live = _live(runtime, "sched")
    live.register(make_model("ses", alpha=0.9).fit(BEFORE), "champion")
    live.serve()
    start = live.controller.started_us
    minute = 60_000_000
    for at, cycles in (
        (start, []),  # the cron fires at the next minute
        (start + minute, [("schedule", "failed")]),
        (start + 5 * minute, [("schedule", "failed")]),  # within min_interval
        (start + 15 * minute, [("schedule", "failed")]),  # budget: one retrain per hour, spent
        (start + 62 * minute, [("schedule", "failed")] * 2),
    ):
        live.controller.clock = lambda at=at: at
        live.step()
        assert _cycles(live) == cycles, at - start
    triggered = _audit(live, "retrain.triggered")[0]["detail"]
    assert triggered["trigger"] == "schedule" and triggered["schedule"] == "* * * * *"


def test_a_level_shift_in_the_live_error_triggers_a_retrain(runtime: Runtime) -> None:
    live = _live(runtime, "drifts")
    live.register(make_model("ses", alpha=0.02).fit(BEFORE), "champion")
    live.serve()
    live.feed(BEFORE[:15])
    live.step()
    assert _cycles(live) == []  # stationary: no drift
    live.feed(AFTER[:25])
    live.step()
    assert _cycles(live) == [("drift", "failed")]
    drift = _audit(live, "retrain.triggered")[0]["detail"]
    assert drift["detector"] == "live-mae-shift" and drift["statistic"] > drift["threshold"] > 0


def test_the_first_model_of_a_series_needs_no_comparison(runtime: Runtime) -> None:
    live = _live(runtime, "first")
    first = live.register(make_model("ses", alpha=0.9).fit(BEFORE), "challenger")
    moves.adopt_challenger(
        runtime.catalog, runtime.registry, live.series_id, first, policy=live.policy, actor="test"
    )
    assert [state for _, state in live.step()] == ["promoting", "promoted"]
    assert runtime.registry.aliases(live.series_id) == {"champion": first}
    assert _history(live) == [("promote", first, None)]


def test_a_level_shift_is_detected_retrained_shadowed_promoted_and_the_live_error_recovers(
    runtime: Runtime,
) -> None:
    """The whole loop (several seconds: a real training run on the lake inside it)."""
    live = _live(runtime, "chain")
    slow = live.register(make_model("ses", alpha=0.02).fit(BEFORE), "champion")
    live.serve()
    live.feed(BEFORE[:15])
    live.feed(AFTER[:25])
    moved = live.step()  # drift → retrained on the lake's last day → registered as challenger → shadowed
    assert [state for _, state in moved] == ["shadowing"]
    (cycle,) = _actions(live)
    assert cycle["trigger"] == "drift" and cycle["champion_version"] == slow
    live.feed(AFTER[25:40])
    assert [state for _, state in live.step()] == ["promoting", "swapping"]
    decided = _audit(live, "promotion.decided")[0]["detail"]
    assert decided["points"] == 12 and decided["challenger_mae"] <= 0.95 * decided["champion_mae"]
    live.serve()
    assert [state for _, state in live.step()] == ["watching"]
    live.feed(AFTER[40:60])
    assert [state for _, state in live.step()] == ["promoted"]
    new = runtime.catalog.action(cycle["id"])["challenger_version"]
    assert _history(live)[-1] == ("promote", new, slow)
    # the live error of what is served now, on the last points: back at the noise's level (sd 0.1)
    served = live.predictor.labels[live.series_id]
    assert served.endswith(f"@v{new}")
    evidence = live.controller.evidence
    recovered = evidence.compare(live.series_id, served, f"ses@v{slow}/shadow", 12)
    assert recovered.points == 12 and recovered.mae_a < 0.5 < recovered.mae_b
