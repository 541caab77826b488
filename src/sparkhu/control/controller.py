"""The controller: retrain → challenger → shadow → promote → swap → watch, per series, under its policy.

Each pass (:meth:`Controller.step`) first looks for triggers, then moves every cycle in progress one
or more steps. A cycle is a row of the catalog (``control_actions``) whose ``state`` says what is
done; every step is idempotent and ends by a compare-and-set of the state, so a controller killed
anywhere resumes each cycle where the catalog says it stood:

===============  ===========================================================================
state            the step taken from it
===============  ===========================================================================
``planned``      → ``training``; retrain on the lake's last ``window`` of the series (the
                 training path of ``sparkhu train``), registered under the alias ``challenger``;
                 → ``shadowing`` (or ``failed``: the champion keeps serving)
``training``     (killed while training) train again: the new version takes the alias over
``shadowing``    the challenger forecasts in shadow beside the champion (the online predictor
                 stores its forecasts raw, unblended); once ``gate.min_points`` shared targets
                 are observed, the gate decides → ``promoting`` or ``rejected``
``promoting``    the registry's ``champion`` moves, the champion history gets its row (once per
                 cycle) → ``swapping``
``swapping``     waits until the online predictor serves the new champion (the champion server
                 hot-swaps it), then shadows the old one → ``watching``
``watching``     after ``gate.min_points`` shared targets: ``promoted``, or ``rolling_back`` when
                 the new champion is worse than the old by the policy's ``rollback_margin``
``rolling_back`` the old version is champion again (history, audit) → ``rolled_back``
===============  ===========================================================================

Triggers, for a series under a policy with no cycle in progress, never closer than the policy's
``min_interval`` to its last cycle and within its ``budget_per_hour`` (over all its series): the
``schedule`` fired since the last cycle, a drift event of the served model's live error since the
last cycle (``drift = true``), or a champion older than ``max_model_age``. Every decision — trigger,
registration, failure, promotion or rejection with its numbers, swap, rollback — is written to the
audit log. Shadows live in the predictor's memory only; after a restart the controller queues them
again from the registry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sparkhu.config import TrainingPolicy, schedule_trigger
from sparkhu.control.evidence import Evidence
from sparkhu.control.gate import promotion_verdict, rollback_verdict
from sparkhu.control.moves import apply_promotion, apply_rollback
from sparkhu.control.policies import policy_for
from sparkhu.errors import NotFoundError, SparkhuError
from sparkhu.forecast.registry import CHALLENGER, ModelRegistry
from sparkhu.online.learner import SHADOW_SUFFIX, OnlinePredictor
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.catalog.control import OPEN_STATES
from sparkhu.timeaxis import from_us, now_us, parse_duration, to_us

log = logging.getLogger(__name__)

ACTOR = "controller"
HOUR_US = 3600 * 1_000_000
RETRAINS = ("schedule", "drift", "max_age", "retrain_now")
"""Triggers of the cycles that retrain, which a policy's hourly budget counts."""
Retrain = Callable[[str, TrainingPolicy], int]
"""``retrain(series_id, policy)``: train a challenger on the series' recent data; its version."""


def _span_us(text: str) -> int:
    return int(parse_duration(text).total_seconds() * 1_000_000)


class Controller:
    """Run the cycles of the series under ``policies`` (see the module docstring).

    ``policies()``: the policies in force, read at every pass (they change at run time).
    ``retrain``: trains one challenger (the app binds it to ``sparkhu train``'s path).
    ``series()``: the series to govern (the live ones). ``predictor_of(series_id)``: the online
    predictor serving a series, None when none does (no shadow, no watch: a promotion is final).
    ``clock()``: now, µs (wall time: schedules, intervals, budgets). Cycles move every ``tick_s``;
    triggers are looked for every ``scan_s`` (each look reads every governed series' recent errors).
    """

    def __init__(
        self,
        catalog: Catalog,
        registry: ModelRegistry,
        evidence: Evidence,
        *,
        policies: Callable[[], Sequence[TrainingPolicy]],
        retrain: Retrain,
        series: Callable[[], Iterable[str]],
        predictor_of: Callable[[str], OnlinePredictor | None],
        tick_s: float = 5.0,
        scan_s: float = 60.0,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.catalog, self.registry, self.evidence = catalog, registry, evidence
        self.policies, self.retrain, self.series = policies, retrain, series
        self.predictor_of, self.tick_s, self.clock = predictor_of, tick_s, clock
        self.started_us = clock()
        self.scan_s = scan_s
        self._next_scan_us = self.started_us
        self._shadows: dict[int, tuple[str, str]] = {}
        """cycle id → (series, label) of the shadow this controller queued for it."""
        self.counts = {"triggered": 0, "promoted": 0, "rejected": 0, "rolled_back": 0, "failed": 0}

    # ---- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """A pass every ``tick_s`` until ``stop`` is set; a failing pass is logged and tried again."""
        while not stop.is_set():
            try:
                self.step()
            except SparkhuError as exc:
                log.error("controller: %s; trying again in %.0f s", exc, self.tick_s)
            stop.wait(self.tick_s)

    def step(self) -> list[tuple[int, str]]:
        """One pass: triggers, then every cycle in progress as far as it can go; (cycle, state) reached."""
        policies = list(self.policies())
        if self.clock() >= self._next_scan_us:
            self._next_scan_us = self.clock() + int(self.scan_s * 1_000_000)
            self._trigger(policies)
        moved: list[tuple[int, str]] = []
        open_cycles = self.catalog.actions(states=OPEN_STATES)
        for action in sorted(open_cycles, key=lambda a: a["id"]):
            policy = self._policy(action, policies)
            for _ in range(len(OPEN_STATES)):  # as many steps as can be taken now
                state = self._advance(action, policy)
                if state is None:
                    break
                moved.append((int(action["id"]), state))
                action = self.catalog.action(int(action["id"]))
                if action["state"] not in OPEN_STATES:
                    break
        self._drop_stale_shadows()
        return moved

    def _policy(self, action: Mapping[str, Any], policies: Sequence[TrainingPolicy]) -> TrainingPolicy | None:
        named = [p for p in policies if p.name == action["policy"]]
        return named[0] if named else policy_for(action["series_id"], policies)

    # ---- triggers --------------------------------------------------------------------------
    def _trigger(self, policies: Sequence[TrainingPolicy]) -> None:
        if not policies:
            return
        now = self.clock()
        busy = {a["series_id"] for a in self.catalog.actions(states=OPEN_STATES)}
        champions: dict[str, int] | None = None
        for sid in sorted(set(self.series())):
            policy = policy_for(sid, policies)
            if policy is None or sid in busy:
                continue
            last = self.catalog.actions(series_id=sid, limit=1)
            last_us = int(last[0]["created_at"]) if last else None
            if last_us is not None and now - last_us < _span_us(policy.min_interval):
                continue
            if policy.max_model_age is not None and champions is None:
                champions = self.registry.champions()
            try:
                why = self._why(sid, policy, now, last_us, last[0] if last else None, champions)
            except SparkhuError as exc:  # one series' evidence unreadable: the others are still looked at
                log.warning("controller: no trigger check for %s: %s", sid, exc)
                continue
            if why is None:
                continue
            trigger, detail = why
            spent = self.catalog.actions(policy=policy.name, since_us=now - HOUR_US, limit=100_000)
            if len([a for a in spent if a["trigger"] in RETRAINS]) >= policy.budget_per_hour:
                log.info(
                    "controller: %s due (%s) but policy %s spent its hourly budget", sid, trigger, policy.name
                )
                continue
            champion = (champions or {}).get(_name(sid)) if champions else self._champion(sid)
            detail["data_us"] = self.evidence.last_ts(sid)
            cycle = self.catalog.open_action(
                sid, trigger=trigger, state="planned", actor=ACTOR, policy=policy.name,
                champion_version=champion, detail=detail,
            )  # fmt: skip
            self.catalog.audit(
                ACTOR, "retrain.triggered", sid, {"cycle": cycle, "trigger": trigger, **detail}
            )
            self.counts["triggered"] += 1

    def _why(
        self,
        sid: str,
        policy: TrainingPolicy,
        now: int,
        last_us: int | None,
        last: Mapping[str, Any] | None,
        champions: Mapping[str, int] | None,
    ) -> tuple[str, dict[str, Any]] | None:
        """The trigger that fires for ``sid`` now, with its numbers; None when none does."""
        if policy.schedule is not None:
            since = from_us(last_us if last_us is not None else self.started_us)
            due = schedule_trigger(policy.schedule).get_next_fire_time(None, since)
            if due is not None and to_us(due) <= now:
                return "schedule", {"schedule": policy.schedule, "due": due.isoformat()}
        if policy.drift:
            since_data = None if last is None else (last["detail"] or {}).get("data_us")
            events = self.evidence.drift_events(sid, since_us=since_data)
            if events:
                event = events[-1]
                return "drift", {
                    "detector": event.detector, "at": from_us(event.at_us).isoformat(),
                    "statistic": event.statistic, "threshold": event.threshold,
                }  # fmt: skip
        if policy.max_model_age is not None and champions is not None and _name(sid) in champions:
            version = champions[_name(sid)]
            made = [m for m in self.catalog.models(series_id=sid) if str(m["version"]) == str(version)]
            if made:
                age = now - to_us(made[0]["created_at"])
                if age > _span_us(policy.max_model_age):
                    return "max_age", {
                        "version": version,
                        "age_s": age / 1e6,
                        "max_model_age": policy.max_model_age,
                    }
        return None

    def _champion(self, sid: str) -> int | None:
        try:
            return self.registry.aliases(sid).get("champion")
        except NotFoundError:
            return None

    # ---- the steps -------------------------------------------------------------------------
    def _advance(self, action: Mapping[str, Any], policy: TrainingPolicy | None) -> str | None:
        """Take the next step of a cycle; the state reached, None when it must wait."""
        state = action["state"]
        if state in ("planned", "training", "shadowing", "watching"):
            if policy is None:
                reason = {"reason": "no training policy covers the series any more"}
                return self._end(action, "failed", "cycle.failed", reason)
            if state == "shadowing":
                return self._shadowing(action, policy)
            if state == "watching":
                return self._watching(action, policy)
            return self._train(action, policy)
        if state == "promoting":
            watch = (
                self.predictor_of(action["series_id"]) is not None and action["champion_version"] is not None
            )
            try:
                state = apply_promotion(self.catalog, self.registry, action, watch=watch)
            except NotFoundError as exc:  # the version was deleted meanwhile: nothing to promote
                return self._end(action, "failed", "cycle.failed", {"reason": str(exc)})
            self.counts["promoted"] += 1
            return state
        if state == "swapping":
            return self._swapping(action)
        if state == "rolling_back":
            return apply_rollback(self.catalog, self.registry, action)
        return None

    def _end(self, action: Mapping[str, Any], state: str, what: str, detail: dict[str, Any]) -> str | None:
        audit = (ACTOR, what, action["series_id"], {"cycle": action["id"], **detail})
        if not self.catalog.move_action(
            int(action["id"]), action["state"], state, detail=detail, audit=audit
        ):
            return None
        if state in ("rejected", "failed"):
            self.counts[state] += 1
        return state

    def _train(self, action: Mapping[str, Any], policy: TrainingPolicy) -> str | None:
        cycle, sid = int(action["id"]), action["series_id"]
        if action["state"] == "planned" and not self.catalog.move_action(cycle, "planned", "training"):
            return None
        try:
            version = self.retrain(sid, policy)
        except SparkhuError as exc:
            log.warning("controller: retraining %s failed: %s", sid, exc)
            self.counts["failed"] += 1
            error = {"error": str(exc)[:2000]}
            audit = (ACTOR, "retrain.failed", sid, {"cycle": cycle, **error})
            self.catalog.move_action(cycle, "training", "failed", detail=error, audit=audit)
            return "failed"
        data_us = self._data_now(sid)
        audit = (
            ACTOR, "challenger.registered", sid,
            {"cycle": cycle, "version": version, "champion": action["champion_version"]},
        )  # fmt: skip
        if not self.catalog.move_action(
            cycle, "training", "shadowing", challenger_version=version, detail={"shadow_data_us": data_us},
            audit=audit,
        ):  # fmt: skip
            return None
        return "shadowing"

    def _shadow(self, action: Mapping[str, Any], version: int) -> str | None:
        """Make sure the predictor runs ``version`` in shadow for this cycle; its label (None: none runs)."""
        cycle, sid = int(action["id"]), action["series_id"]
        predictor = self.predictor_of(sid)
        if predictor is None:
            return None
        if cycle in self._shadows and self._shadows[cycle][1].endswith(f"@v{version}"):
            return self._shadows[cycle][1]
        served = self.registry.served(sid, version=version)
        predictor.queue_shadow(sid, served.forecaster, served.label, trained_until_us=served.last_ts_us)
        self._shadows[cycle] = (sid, served.label)
        return served.label

    def _unshadow(self, cycle: int) -> None:
        if cycle in self._shadows:
            sid, label = self._shadows.pop(cycle)
            predictor = self.predictor_of(sid)
            if predictor is not None:
                predictor.queue_shadow(sid, None, label)

    def _drop_stale_shadows(self) -> None:
        if not self._shadows:
            return
        still = {int(a["id"]) for a in self.catalog.actions(states=("shadowing", "swapping", "watching"))}
        for cycle in [c for c in self._shadows if c not in still]:
            self._unshadow(cycle)

    def _data_now(self, sid: str) -> int | None:
        """How far the series' stream has come (µs, data time): the newest point its predictor holds,
        else the lake's. Only forecasts for later targets are compared in a shadow or a watch."""
        predictor = self.predictor_of(sid)
        if predictor is not None and sid in predictor.windows and len(predictor.windows[sid]):
            return int(predictor.windows[sid].ts[-1])  # one read of the newest slot: no lock needed
        return self.evidence.last_ts(sid)

    def _served_label(self, sid: str) -> str | None:
        predictor = self.predictor_of(sid)
        return None if predictor is None else predictor.labels.get(sid)

    def _shadowing(self, action: Mapping[str, Any], policy: TrainingPolicy) -> str | None:
        cycle, sid, version = int(action["id"]), action["series_id"], int(action["challenger_version"])
        if action["champion_version"] is None and self._champion(sid) is None:
            reason = "no champion to compare with: the first model of the series"
            audit = (ACTOR, "promotion.decided", sid, {"cycle": cycle, "reason": reason})
            moved = self.catalog.move_action(
                cycle, "shadowing", "promoting", detail={"reason": reason}, audit=audit
            )
            return "promoting" if moved else None
        try:
            label = self._shadow(action, version)
        except SparkhuError as exc:
            self.registry.drop_alias(sid, CHALLENGER, version)
            return self._end(
                action, "rejected", "promotion.rejected", {"reason": f"challenger not loadable: {exc}"}
            )
        champion = self._served_label(sid)
        if label is None or champion is None:
            return None  # nothing live to compare on yet
        detail = action["detail"] or {}
        live = self.evidence.compare(
            sid,
            champion,
            label + SHADOW_SUFFIX,
            policy.gate.min_points,
            since_us=detail.get("shadow_data_us"),
        )
        if promotion_verdict(live, policy) is None:
            return None  # too few shared points yet (the registry is asked only when deciding)
        verdict = promotion_verdict(live, policy, **self._mases(sid, champion, version))
        if verdict is None:
            return None
        numbers = {**verdict.numbers, "champion": champion, "challenger": label}
        if not verdict.promote:
            self._unshadow(cycle)
            self.registry.drop_alias(sid, CHALLENGER, version)
            return self._end(
                action, "rejected", "promotion.rejected", {"reason": verdict.reason, "numbers": numbers}
            )
        audit = (ACTOR, "promotion.decided", sid, {"cycle": cycle, "reason": verdict.reason, **numbers})
        decided = {"reason": verdict.reason, "numbers": numbers}
        if not self.catalog.move_action(cycle, "shadowing", "promoting", detail=decided, audit=audit):
            return None
        return "promoting"

    def _mases(self, sid: str, champion_label: str, version: int) -> dict[str, float | None]:
        """Back-test MASE of the champion served and of the challenger ``version``, from the registry."""
        served = _version_of(champion_label)
        by_version = {v.version: v.metrics.get("mase") for v in self.registry.versions(sid)}
        return {
            "champion_mase": by_version.get(served) if served else None,
            "challenger_mase": by_version.get(version),
        }

    def _swapping(self, action: Mapping[str, Any]) -> str | None:
        cycle, sid = int(action["id"]), action["series_id"]
        new, old = int(action["challenger_version"]), action["champion_version"]
        serving = self._served_label(sid)
        if serving is None or old is None:
            return self._end(
                action, "promoted", "promotion.final", {"reason": "no live stream to watch it on"}
            )
        if _version_of(serving) != new:
            return None  # the champion server has not swapped it in yet
        self._unshadow(cycle)  # the challenger's shadow: it serves now
        data_us = self._data_now(sid)
        audit = (
            ACTOR,
            "champion.swapped",
            sid,
            {"cycle": cycle, "serving": serving, "watching_against": old},
        )
        watch = {"watch_data_us": data_us}
        if not self.catalog.move_action(cycle, "swapping", "watching", detail=watch, audit=audit):
            return None
        return "watching"

    def _watching(self, action: Mapping[str, Any], policy: TrainingPolicy) -> str | None:
        cycle, sid, old = int(action["id"]), action["series_id"], int(action["champion_version"])
        try:
            label = self._shadow(action, old)
        except NotFoundError as exc:  # the old version was deleted: nothing to watch against
            return self._end(action, "promoted", "promotion.confirmed", {"watch": f"not watched: {exc}"})
        serving = self._served_label(sid)
        if label is None or serving is None:
            return None
        detail = action["detail"] or {}
        live = self.evidence.compare(
            sid, serving, label + SHADOW_SUFFIX, policy.gate.min_points, since_us=detail.get("watch_data_us")
        )
        verdict = rollback_verdict(live, policy)
        if verdict is None:
            return None
        numbers = {**verdict.numbers, "new": serving, "old": label}
        if verdict.promote:
            self._unshadow(cycle)
            return self._end(
                action, "promoted", "promotion.confirmed", {"watch": verdict.reason, "watch_numbers": numbers}
            )
        audit = (ACTOR, "rollback.decided", sid, {"cycle": cycle, "reason": verdict.reason, **numbers})
        decided = {"rollback_reason": verdict.reason, "rollback_numbers": numbers}
        if not self.catalog.move_action(cycle, "watching", "rolling_back", detail=decided, audit=audit):
            return None
        self._unshadow(cycle)
        self.counts["rolled_back"] += 1
        return "rolling_back"

    def figures(self) -> dict[str, float]:
        """The platform's status line: decisions so far, shadows running."""
        return {**{k: float(v) for k, v in self.counts.items()}, "shadows": float(len(self._shadows))}


def _name(series_id: str) -> str:
    from sparkhu.forecast.registry import registered_name

    return registered_name(series_id)


def _version_of(label: str | None) -> int | None:
    """``ses@v3`` → 3; None for a label that names no registry version (``ses``: the default model)."""
    if not label or "@v" not in label:
        return None
    tail = label.rsplit("@v", 1)[1]
    return int(tail) if tail.isdigit() else None
