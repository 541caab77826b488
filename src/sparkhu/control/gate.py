"""The promotion gate and the rollback rule: pure functions of the evidence and a policy.

>>> from sparkhu.config import TrainingPolicy
>>> policy = TrainingPolicy.of({"name": "p", "gate": {"margin": 0.1, "min_points": 3}})
>>> promotion_verdict(LiveComparison(3, 2.0, 1.5), policy, champion_mase=1.0, challenger_mase=0.9).promote
True
>>> print(promotion_verdict(LiveComparison(3, 2.0, 1.9), policy).reason)
challenger live MAE 1.9 is not 10% under the champion's 2 on the same 3 points
>>> promotion_verdict(LiveComparison(2, 2.0, 1.0), policy) is None  # too few points yet
True
>>> rollback_verdict(LiveComparison(3, 1.3, 1.0), policy).promote  # new 30% worse than old: roll back
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sparkhu.config import TrainingPolicy
from sparkhu.control.evidence import LiveComparison


@dataclass(frozen=True)
class Verdict:
    """A decision, its reason in words and the numbers behind it (for the audit log and the history).

    ``promote``: the gate let the challenger through (a promotion verdict), or the new champion
    stays (a rollback verdict; False means roll back).
    """

    promote: bool
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


def _g(value: float) -> str:
    return f"{value:.4g}"


def promotion_verdict(
    live: LiveComparison,
    policy: TrainingPolicy,
    *,
    champion_mase: float | None = None,
    challenger_mase: float | None = None,
) -> Verdict | None:
    """Promote when the challenger (``live.mae_b``) beats the champion (``live.mae_a``) by the policy's
    margin on ``gate.min_points`` shared points and (if asked) its back-test MASE is no worse; None
    while fewer points were compared."""
    gate = policy.gate
    if live.points < gate.min_points or math.isnan(live.mae_a) or math.isnan(live.mae_b):
        return None
    numbers: dict[str, Any] = {
        "points": live.points,
        "champion_mae": live.mae_a,
        "challenger_mae": live.mae_b,
        "margin": gate.margin,
        "champion_mase": champion_mase,
        "challenger_mase": challenger_mase,
    }
    percent = f"{gate.margin:.0%}"
    if live.mae_b > live.mae_a * (1.0 - gate.margin):
        reason = (
            f"challenger live MAE {_g(live.mae_b)} is not {percent} under the champion's {_g(live.mae_a)} "
            f"on the same {live.points} points"
        )
        return Verdict(False, reason, numbers)
    if champion_mase is not None and challenger_mase is not None:
        if gate.backtest_not_worse and challenger_mase > champion_mase:
            reason = (
                f"challenger back-test MASE {_g(challenger_mase)} "
                f"is worse than the champion's {_g(champion_mase)}"
            )
            return Verdict(False, reason, numbers)
        backtest = f"; back-test MASE {_g(challenger_mase)} vs {_g(champion_mase)}"
    else:
        backtest = ""
    reason = (
        f"challenger live MAE {_g(live.mae_b)} beats the champion's {_g(live.mae_a)} by at least {percent} "
        f"on the same {live.points} points{backtest}"
    )
    return Verdict(True, reason, numbers)


def rollback_verdict(live: LiveComparison, policy: TrainingPolicy) -> Verdict | None:
    """Keep the new champion (``live.mae_a``) unless its live MAE exceeds the old one's (``live.mae_b``,
    in shadow) by the policy's rollback margin; None while fewer than ``gate.min_points`` were compared."""
    if live.points < policy.gate.min_points or math.isnan(live.mae_a) or math.isnan(live.mae_b):
        return None
    numbers = {
        "points": live.points,
        "new_mae": live.mae_a,
        "old_mae": live.mae_b,
        "rollback_margin": policy.rollback_margin,
    }
    limit = live.mae_b * (1.0 + policy.rollback_margin)
    if live.mae_a > limit:
        reason = (
            f"new champion live MAE {_g(live.mae_a)} is worse than the old one's {_g(live.mae_b)} by more "
            f"than {policy.rollback_margin:.0%} on the same {live.points} points"
        )
        return Verdict(False, reason, numbers)
    reason = (
        f"new champion live MAE {_g(live.mae_a)} within {policy.rollback_margin:.0%} "
        f"of the old one's {_g(live.mae_b)}"
    )
    return Verdict(True, reason, numbers)
