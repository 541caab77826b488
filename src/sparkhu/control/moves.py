"""Promotions, rollbacks and retrains by hand, and the steps the controller shares with them.

Every move of the ``champion`` alias is a *cycle* in the catalog (``control_actions``) and a row of
the champion history, written by :func:`apply_promotion` / :func:`apply_rollback`. Both steps are
idempotent: the registry's ``promote`` of the version already champion changes nothing, and the
history keeps one row per cycle and event. So whoever finds a cycle in ``promoting`` or
``rolling_back`` — the command that started it, or the controller after a crash — finishes it.

A promotion by hand of a series under a policy is then *watched* by the controller like its own
(``swapping`` → ``watching``): the old champion runs in shadow, and the new one is rolled back when
its live error is worse by the policy's rollback margin. Without a policy it is final at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sparkhu.config import TrainingPolicy
from sparkhu.control.policies import policy_for
from sparkhu.errors import ConfigError, InputError, NotFoundError
from sparkhu.forecast.registry import CHAMPION, PREVIOUS, ModelRegistry, registered_name
from sparkhu.series import SeriesId
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.catalog.control import OPEN_STATES


def _series(series_id: str) -> str:
    return str(SeriesId.parse(series_id))


def apply_promotion(
    catalog: Catalog, registry: ModelRegistry, action: Mapping[str, Any], *, watch: bool
) -> str:
    """The ``promoting`` step of a cycle: the challenger becomes champion, the history says why; the
    cycle moves to ``swapping`` (``watch``) or ``promoted``. Returns the new state."""
    detail = action["detail"] or {}
    registry.promote(
        action["series_id"],
        int(action["challenger_version"]),
        event="promote",
        actor=action["actor"],
        reason=detail.get("reason", "promoted"),
        numbers=detail.get("numbers") or {},
        previous=action["champion_version"],
        action_id=int(action["id"]),
    )
    state = "swapping" if watch else "promoted"
    audit = {
        "version": action["challenger_version"],
        "previous": action["champion_version"],
        "cycle": action["id"],
        "reason": detail.get("reason"),
        "numbers": detail.get("numbers") or {},
    }
    audited = (action["actor"], "model.promote", action["series_id"], audit)
    catalog.move_action(int(action["id"]), "promoting", state, audit=audited)
    return state


def apply_rollback(catalog: Catalog, registry: ModelRegistry, action: Mapping[str, Any]) -> str:
    """The ``rolling_back`` step: the cycle's former champion (``champion_version``) is champion again,
    the history says why; the cycle ends ``rolled_back``."""
    detail = action["detail"] or {}
    registry.promote(
        action["series_id"],
        int(action["champion_version"]),
        event="rollback",
        actor=action["actor"],
        reason=detail.get("rollback_reason", "rolled back"),
        numbers=detail.get("rollback_numbers") or {},
        previous=action["challenger_version"],
        action_id=int(action["id"]),
    )
    audit = {
        "version": action["champion_version"],
        "from": action["challenger_version"],
        "cycle": action["id"],
        "reason": detail.get("rollback_reason"),
        "numbers": detail.get("rollback_numbers") or {},
    }
    audited = (action["actor"], "model.rollback", action["series_id"], audit)
    catalog.move_action(int(action["id"]), "rolling_back", "rolled_back", audit=audited)
    return "rolled_back"


def _supersede(catalog: Catalog, series_id: str, actor: str) -> None:
    """End the series' cycles in progress: a move by hand takes over."""
    for action in catalog.actions(series_id=series_id, states=OPEN_STATES):
        audit = (actor, "cycle.superseded", series_id, {"cycle": action["id"], "state": action["state"]})
        catalog.move_action(int(action["id"]), action["state"], "superseded", audit=audit)


def promote(
    catalog: Catalog,
    registry: ModelRegistry,
    series_id: str,
    version: int,
    *,
    actor: str,
    reason: str = "",
    policies: Sequence[TrainingPolicy] = (),
) -> int:
    """Make ``version`` the champion of ``series_id`` by hand (history, audit); returns the cycle id."""
    sid = _series(series_id)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"expected a positive version number, got {version!r}", field="version")
    old = registry.aliases(sid).get(CHAMPION)
    if old == version:
        raise InputError(f"version {version} is already the champion of {sid}", field="version")
    registry.served(sid, version=version)  # NotFoundError (or not a forecaster) before anything moves
    _supersede(catalog, sid, actor)
    policy = policy_for(sid, policies)
    action_id = catalog.open_action(
        sid,
        trigger="manual",
        state="promoting",
        actor=actor,
        policy=None if policy is None else policy.name,
        champion_version=old,
        challenger_version=version,
        detail={"reason": reason or f"promoted by hand by {actor}"},
    )
    apply_promotion(
        catalog, registry, catalog.action(action_id), watch=policy is not None and old is not None
    )
    return action_id


def rollback(
    catalog: Catalog, registry: ModelRegistry, series_id: str, *, actor: str, reason: str = ""
) -> int:
    """Bring back the champion before the current one (one step back; history, audit); the cycle id."""
    sid = _series(series_id)
    aliases = registry.aliases(sid)
    current = aliases.get(CHAMPION)
    if current is None:
        raise NotFoundError(f"{sid} has no champion to roll back")
    history = catalog.champion_history(registered_name(sid))
    before = next((row["previous_version"] for row in reversed(history) if row["version"] == current), None)
    before = before if before is not None else aliases.get(PREVIOUS)
    if before is None or before == current:
        raise NotFoundError(f"{sid}: no earlier champion than version {current} to roll back to")
    _supersede(catalog, sid, actor)
    action_id = catalog.open_action(
        sid,
        trigger="manual",
        state="rolling_back",
        actor=actor,
        champion_version=before,
        challenger_version=current,
        detail={"rollback_reason": reason or f"rolled back by hand by {actor}"},
    )
    apply_rollback(catalog, registry, catalog.action(action_id))
    return action_id


def retrain_now(catalog: Catalog, series_id: str, *, actor: str, policies: Sequence[TrainingPolicy]) -> int:
    """Ask the controller to retrain ``series_id`` now (past its policy's minimum interval and budget);
    the cycle id. The series must follow a policy and have no cycle in progress."""
    sid = _series(series_id)
    policy = policy_for(sid, policies)
    if policy is None:
        raise ConfigError(f"no training policy covers {sid}; set one with `sparkhu policies set`")
    busy = catalog.actions(series_id=sid, states=OPEN_STATES, limit=1)
    if busy:
        raise InputError(
            f"{sid} has a cycle in progress (#{busy[0]['id']}, {busy[0]['state']})", field="seriesId"
        )
    action_id = catalog.open_action(
        sid,
        trigger="retrain_now",
        state="planned",
        actor=actor,
        policy=policy.name,
        detail={"reason": "retrain now"},
    )
    catalog.audit(actor, "retrain.requested", sid, {"cycle": action_id, "policy": policy.name})
    return action_id


def history(catalog: Catalog, series_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """The champions of a series, oldest first: version, since, until, event, actor, reason, numbers."""
    return catalog.champion_history(registered_name(_series(series_id)), limit=limit)


def adopt_challenger(
    catalog: Catalog,
    registry: ModelRegistry,
    series_id: str,
    version: int,
    *,
    policy: TrainingPolicy,
    actor: str,
    trigger: str = "train",
) -> int:
    """Hand a challenger registered outside the controller (``sparkhu train`` under a policy with
    ``gate_training``) to the controller: a cycle in ``shadowing``, which the gate then decides."""
    sid = _series(series_id)
    _supersede(catalog, sid, actor)
    champion = registry.aliases(sid).get(CHAMPION)
    action_id = catalog.open_action(
        sid,
        trigger=trigger,
        state="shadowing",
        actor=actor,
        policy=policy.name,
        champion_version=champion,
        challenger_version=version,
        detail={"reason": f"registered by {trigger} under policy {policy.name}"},
    )
    catalog.audit(
        actor, "challenger.registered", sid, {"cycle": action_id, "version": version, "champion": champion}
    )
    return action_id
