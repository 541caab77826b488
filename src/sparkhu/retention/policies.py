"""Retention policies and legal holds: where they come from, how they are checked, when they cut.

A policy comes from ``[[retention.policies]]`` of ``sparkhu.toml`` or is set at run time (CLI,
GraphQL, REST), which stores it in the catalog (``policies`` of kind ``retention``); a stored
policy of the same name wins over the file's. Every policy is checked against the floor when it
is read, so a bad one is one clear error naming its field.

>>> p = parse_policy({"name": "raw-90d", "target": "raw", "keep_days": 90}, floor_days=1)
>>> p.target, p.age_days
('raw', 90.0)
>>> parse_policy({"name": "x", "target": "lake"}, floor_days=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
sparkhu.errors.ConfigError: retention policy target: Input should be 'raw', ...
"""

from __future__ import annotations

import calendar
import fnmatch
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sparkhu.config import RetentionPolicySettings, validation_message
from sparkhu.errors import ConfigError, InputError, NotFoundError
from sparkhu.retention.context import RetentionContext
from sparkhu.timeaxis import from_us, to_us

Policy = RetentionPolicySettings
"""One retention policy (the model lives in :mod:`sparkhu.config`, which validates the file's)."""

POLICY_KIND = "retention"
HOLD_KIND = "retention.hold"
LAKE_ZONES = ("raw", "validated", "clean", "features", "analysis", "quarantine")


class Hold(BaseModel):
    """A legal hold: pins the datasets ``match`` (glob) of ``target`` (a lake zone, ``bus``,
    ``predictions.raw``... or ``*``), and within them the series ``series`` (glob)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    target: str = "*"
    match: str = "*"
    series: str = "*"
    reason: str = ""

    def pins(self, target: str, name: str) -> bool:
        """Whether the hold covers dataset/topic ``name`` of ``target`` (any series)."""
        return fnmatch.fnmatchcase(target, self.target) and fnmatch.fnmatchcase(name, self.match)


def parse_policy(body: Mapping[str, Any], *, floor_days: float) -> Policy:
    """A policy from its fields; :class:`ConfigError` naming the field at fault (floor included)."""
    try:
        policy = Policy.model_validate(dict(body))
    except ValidationError as exc:
        raise ConfigError(f"retention policy {validation_message(exc)}") from exc
    check_floor(policy, floor_days)
    if policy.start_date is not None:
        start_date(policy)
    if policy.action == "downsample" and not policy.levels:
        raise ConfigError(
            f"retention policy {policy.name!r} levels: a downsample policy needs at least one level"
        )
    return policy


def has_age(policy: Policy) -> bool:
    """Whether the policy has an age rule (a period or a start date); without one it acts only by
    quota (``max_bytes``) or count (``keep_versions``), or not at all."""
    return policy.age_days > 0 or policy.start_date is not None


def check_floor(policy: Policy, floor_days: float) -> None:
    """:class:`ConfigError` when ``policy`` would act on rows younger than the floor."""
    if policy.action != "downsample" and has_age(policy) and policy.age_days < floor_days:
        raise ConfigError(
            f"retention policy {policy.name!r} keep_days: keeps {policy.age_days:g} day(s), under the "
            f"retention floor of {floor_days:g} day(s) ([retention] floor_days)"
        )


def parse_hold(body: Mapping[str, Any]) -> Hold:
    """A hold from its fields; :class:`ConfigError` naming the field at fault."""
    try:
        return Hold.model_validate(dict(body))
    except ValidationError as exc:
        raise ConfigError(f"legal hold {validation_message(exc)}") from exc


def start_date(policy: Policy) -> date | None:
    """The policy's ``start_date`` as a date (ISO ``YYYY-MM-DD``); ConfigError naming it otherwise."""
    if policy.start_date is None:
        return None
    try:
        return date.fromisoformat(policy.start_date[:10])
    except ValueError as exc:
        raise ConfigError(
            f"retention policy {policy.name!r} start_date: {policy.start_date!r} is not a date (YYYY-MM-DD)"
        ) from exc


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` minus calendar months, the day clamped to the month's length.

    >>> months_before(datetime(2024, 3, 31, tzinfo=UTC), 1).isoformat()
    '2024-02-29T00:00:00+00:00'
    """
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def cutoff_us(policy: Policy, now: int, *, keep_days: float | None = None) -> int:
    """Rows strictly before this instant (µs, UTC) are the policy's to act on:
    ``max(now − keep_months − keep_days, start_date)``, as the original's backup policy.

    >>> p = Policy(name="p", keep_days=1)
    >>> from_us(cutoff_us(p, to_us(datetime(2024, 1, 2, 12, tzinfo=UTC)))).isoformat()
    '2024-01-01T12:00:00+00:00'
    """
    moment = months_before(from_us(now), policy.keep_months)
    moment -= timedelta(days=policy.keep_days if keep_days is None else keep_days)
    start = start_date(policy)
    if start is not None:
        moment = max(moment, datetime(start.year, start.month, start.day, tzinfo=UTC))
    return to_us(moment)


def policies(ctx: RetentionContext) -> list[Policy]:
    """The policies in force: the file's, overridden (by name) by those stored in the catalog."""
    found: dict[str, Policy] = {p.name: p for p in ctx.settings.policies}
    for row in ctx.catalog.policies(POLICY_KIND):
        found[row["name"]] = parse_policy(row["body"], floor_days=ctx.settings.floor_days)
    return [found[name] for name in sorted(found)]


def set_policy(ctx: RetentionContext, body: Mapping[str, Any], *, actor: str = "retention") -> Policy:
    """Check and store a policy at run time (it then wins over the file's of the same name).

    A bad policy is an :class:`InputError` naming the field (the caller's input, not the settings)."""
    try:
        policy = parse_policy(body, floor_days=ctx.settings.floor_days)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    ctx.catalog.set_policy(POLICY_KIND, policy.name, policy.model_dump(mode="json"))
    ctx.catalog.audit(actor, "policy.set", f"policy/{policy.name}", policy.model_dump(mode="json"))
    return policy


def delete_policy(ctx: RetentionContext, name: str, *, actor: str = "retention") -> None:
    """Remove a stored policy; NotFoundError when none of that name is stored."""
    if not ctx.catalog.delete_policy(POLICY_KIND, name):
        raise NotFoundError(f"no retention policy {name!r} is stored (policies from sparkhu.toml stay)")
    ctx.catalog.audit(actor, "policy.delete", f"policy/{name}", {})


def holds(ctx: RetentionContext) -> list[Hold]:
    """The legal holds in force."""
    return [parse_hold(row["body"]) for row in ctx.catalog.policies(HOLD_KIND)]


def set_hold(ctx: RetentionContext, body: Mapping[str, Any], *, actor: str = "retention") -> Hold:
    """Place (or replace) a legal hold; InputError naming the field of a bad one."""
    try:
        hold = parse_hold(body)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    ctx.catalog.set_policy(HOLD_KIND, hold.name, hold.model_dump())
    ctx.catalog.audit(actor, "hold.set", f"hold/{hold.name}", hold.model_dump())
    return hold


def release_hold(ctx: RetentionContext, name: str, *, actor: str = "retention") -> None:
    """Lift a legal hold; NotFoundError when there is none of that name."""
    if not ctx.catalog.delete_policy(HOLD_KIND, name):
        raise NotFoundError(f"no legal hold {name!r}")
    ctx.catalog.audit(actor, "hold.release", f"hold/{name}", {})


Kind = Literal["lake", "bus", "predictions", "registry", "runs", "reports", "archive"]
_KINDS: dict[str, Kind] = {
    "bus": "bus",
    "predictions": "predictions",
    "registry": "registry",
    "runs": "runs",
    "reports": "reports",
    "archive": "archive",
}


def kind_of(target: str) -> Kind:
    """The family of a target: ``lake`` for a zone, else its name's first word.

    >>> kind_of("clean"), kind_of("predictions.blended")
    ('lake', 'predictions')
    """
    return "lake" if target in LAKE_ZONES else _KINDS[target.split(".")[0]]
