"""The controller's half of the catalog on SQLite and PostgreSQL: the champion history is append-only
and written once per cycle and event; cycles move by compare-and-set with their audit entry."""

from __future__ import annotations

import pytest

from sparkhu.errors import NotFoundError
from sparkhu.storage.catalog.control import OPEN_STATES


def test_the_champion_history_is_written_once_per_cycle_and_event(catalog) -> None:
    name = "sparkhu.a.b.c"
    assert catalog.record_champion(
        name, "a/b/c", 1, previous=None, event="train", actor="train", reason="first"
    )
    assert catalog.record_champion(
        name, "a/b/c", 2, previous=1, event="promote", actor="c", reason="x", action_id=7
    )
    again = catalog.record_champion(
        name, "a/b/c", 2, previous=1, event="promote", actor="c", reason="y", action_id=7
    )
    assert not again  # a replayed step adds nothing
    assert catalog.record_champion(
        name, "a/b/c", 1, previous=2, event="rollback", actor="c", reason="z", action_id=7
    )
    rows = catalog.champion_history(name)
    assert [(r["version"], r["event"], r["reason"], r["action_id"]) for r in rows] == [
        (1, "train", "first", None),
        (2, "promote", "x", 7),
        (1, "rollback", "z", 7),
    ]
    assert rows[0]["until"] == rows[1]["since"] and rows[1]["until"] == rows[2]["since"]
    assert rows[2]["until"] is None and catalog.champion_history("sparkhu.other") == []
    assert not hasattr(catalog, "delete_champion_history")


def test_cycles_move_by_compare_and_set_with_their_audit_entry(catalog) -> None:
    cycle = catalog.open_action(
        "a/b/c", trigger="drift", state="planned", actor="controller", detail={"a": 1}
    )
    audit = ("controller", "promotion.decided", "a/b/c", {"cycle": cycle, "points": 30})
    assert catalog.move_action(
        cycle, "planned", "training", challenger_version=3, detail={"b": 2}, audit=audit
    )
    assert not catalog.move_action(
        cycle, "planned", "failed", audit=audit
    )  # moved already: nothing, no audit
    action = catalog.action(cycle)
    assert (action["state"], action["challenger_version"], action["detail"]) == (
        "training",
        3,
        {"a": 1, "b": 2},
    )
    assert [e["action"] for e in catalog.audit_log()] == ["promotion.decided"]
    assert [a["id"] for a in catalog.actions(states=OPEN_STATES)] == [cycle]
    assert catalog.actions(series_id="x/y/z") == []
    with pytest.raises(NotFoundError, match="no controller cycle #999"):
        catalog.action(999)
