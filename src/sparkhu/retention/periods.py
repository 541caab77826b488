"""The original retention service's two policies, ``backup`` and ``disposal``, on sparkhu's policies.

The original kept, per condition, a ``period`` (``"N months"``, ``"N years"`` or ``"no policy"``) and
for backup a ``startDate``; daily, it archived day partitions older than ``max(now − period,
startDate)`` and deleted archives older than the disposal period. Here:

* ``backup`` is the policy ``backup``: target ``raw``, every dataset, action ``archive``;
* ``disposal`` is the policy ``disposal``: target ``archive`` (archives whose rows are older go);
* ``"no policy"`` stores the policy disabled. The period's text is kept as given, so ``GET`` answers
  exactly what ``PUT`` set. Validation and messages are the original's.

>>> parse_period("4 months"), parse_period("2 years"), parse_period("no policy")
(4, 24, None)
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sparkhu.errors import InputError
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.policies import POLICY_KIND, parse_policy
from sparkhu.timeaxis import from_us

REST_KIND = "retention.rest"
CONDITIONS = ("backup", "disposal")
BAD_CONDITION_GET = "invalid request, expected condition: [backup | disposal]"
BAD_CONDITION = "invalid condition, expected condition: [backup | disposal]"
BAD_PERIOD = "invalid period, expected [num years | num months | no policy]"
BAD_START = "invalid startDate, expected yyyy-MM-dd, startDate must be a date in the past."
NO_PERIOD = "invalid request, period fields must be given"


class PeriodError(InputError):
    """A request the original service answered with 400 ``{message}``; the message is the original's."""


def parse_period(period: Any) -> int | None:
    """Months of ``"N months"`` / ``"N years"`` (N a positive integer), None for ``"no policy"``."""
    if period == "no policy":
        return None
    tokens = period.split(" ") if isinstance(period, str) else []
    if len(tokens) != 2 or not tokens[0].isascii() or not tokens[0].lstrip("+").isdigit():
        raise PeriodError(BAD_PERIOD)
    number = int(tokens[0])
    if number <= 0 or tokens[1] not in ("months", "years"):
        raise PeriodError(BAD_PERIOD)
    return number if tokens[1] == "months" else 12 * number


def check_start(start: Any, today: date) -> str:
    """A ``yyyy-MM-dd`` date strictly before now; PeriodError otherwise."""
    if not isinstance(start, str) or not start.strip():
        raise PeriodError(BAD_START)
    try:
        day = date.fromisoformat(start.strip())
    except ValueError as exc:
        raise PeriodError(BAD_START) from exc
    if len(start.strip()) != 10 or day > today:
        raise PeriodError(BAD_START)
    return day.isoformat()


def get_period(ctx: RetentionContext, condition: Any) -> dict[str, Any]:
    """The ``GET /retention/period?condition=`` body: backup with its ``startDate``, disposal without."""
    if condition not in CONDITIONS:
        raise PeriodError(BAD_CONDITION_GET)
    stored = {row["name"]: row["body"] for row in ctx.catalog.policies(REST_KIND)}.get(condition, {})
    body = {"condition": condition, "period": stored.get("period", "no policy")}
    if condition == "backup":
        body["startDate"] = stored.get("startDate")
    return body


def put_period(ctx: RetentionContext, request: Any, *, actor: str = "rest") -> str:
    """Apply a ``PUT /retention/period`` body; returns the original's success message."""
    if not isinstance(request, dict):
        raise PeriodError("invalid request body, expected {startDate, period, condition}")
    condition, period, start = request.get("condition"), request.get("period"), request.get("startDate")
    today = from_us(ctx.now()).date()
    if condition == "backup":
        months = parse_period(period)
        stored = {row["name"]: row["body"] for row in ctx.catalog.policies(REST_KIND)}.get("backup", {})
        if start is not None:
            start = check_start(start, today)
        start = start if start is not None else stored.get("startDate")
        _store(ctx, "backup", str(period), start, months, actor)
        return "backup period changed successfully"
    if condition == "disposal":
        if period is None:
            raise PeriodError(NO_PERIOD)
        months = parse_period(period)
        _store(ctx, "disposal", str(period), None, months, actor)
        return "disposal period changed successfully"
    raise PeriodError(BAD_CONDITION)


def _store(
    ctx: RetentionContext, name: str, period: str, start: str | None, months: int | None, actor: str
) -> None:
    body: dict[str, Any] = {
        "name": name,
        "target": "raw" if name == "backup" else "archive",
        "action": "archive" if name == "backup" else "delete",
        "keep_months": months or 0,
        "enabled": months is not None,
    }
    if months is None:
        body["keep_days"] = max(ctx.settings.floor_days, 1.0)  # disabled; a valid age all the same
    if start is not None:
        body["start_date"] = start
    policy = parse_policy(body, floor_days=ctx.settings.floor_days)
    ctx.catalog.set_policy(POLICY_KIND, name, policy.model_dump(mode="json"))
    ctx.catalog.set_policy(REST_KIND, name, {"period": period, "startDate": start})
    ctx.catalog.audit(actor, "policy.set", f"policy/{name}", {"period": period, "startDate": start})


__all__ = ["PeriodError", "get_period", "put_period"]
