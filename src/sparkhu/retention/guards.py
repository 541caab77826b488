"""What no policy may touch, whatever it says.

* the floor: nothing younger than ``[retention] floor_days``;
* raw rows the cleaning pipeline has not processed (every task of the dataset has a successful
  run over the day);
* rows of a dataset that a downsample level built from it has not covered: each level records, per
  source partition, the files its committed rollup was computed from (a file landing later is
  not covered, so late data is never deleted before it is rolled up);
* a live model's training window (``[retention] training_days`` in raw, clean and features while a
  champion or challenger exists);
* anything under a legal hold.
"""

from __future__ import annotations

import fnmatch
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sparkhu.retention.context import RetentionContext
from sparkhu.retention.policies import Hold, Policy
from sparkhu.timeaxis import from_us, to_us

log = logging.getLogger(__name__)

DOWNSAMPLE_OWNER = "retention.downsample"
TRAINING_ZONES = ("raw", "clean", "features")
_US_PER_DAY = 86_400_000_000


def rollup_name(dataset: str, every_s: int) -> str:
    """The lake dataset (zone ``analysis``) of one downsample level of ``dataset``.

    >>> rollup_name("ampds2_electricity", 300)
    'ampds2_electricity.ds300s'
    """
    return f"{dataset}.ds{every_s}s"


def level_key(zone: str, dataset: str, every_s: int) -> str:
    """The catalog watermark key of a level: its source and width."""
    return f"{zone}/{dataset}@{every_s}s"


def ladders(policies: list[Policy], zone: str, dataset: str) -> list[list[tuple[str, str, int]]]:
    """The downsample ladders built from ``zone/dataset``: per policy, ``(source zone, source dataset,
    every_s)`` of each level, the first level's source being ``zone/dataset``."""
    out = []
    for policy in policies:
        if policy.enabled and policy.action == "downsample" and policy.target == zone:
            if fnmatch.fnmatchcase(dataset, policy.match):
                rungs: list[tuple[str, str, int]] = []
                src: tuple[str, str] = (zone, dataset)
                for level in policy.levels:
                    rungs.append((src[0], src[1], level.every_s))
                    src = ("analysis", rollup_name(dataset, level.every_s))
                out.append(rungs)
    return out


def consumers(policies: list[Policy], zone: str, dataset: str) -> list[tuple[str, str, int]]:
    """The levels whose source is ``zone/dataset`` (a dataset a ladder starts from, or a rollup of a
    lower level), as ``(source zone, source dataset, every_s)``."""
    bases = {dataset} | {
        dataset[: -len(f".ds{level.every_s}s")]
        for policy in policies
        for level in policy.levels
        if zone == "analysis" and dataset.endswith(f".ds{level.every_s}s")
    }
    found = {
        rung
        for policy in policies
        for base in bases
        for rungs in ladders([policy], policy.target, base)
        for rung in rungs
        if (rung[0], rung[1]) == (zone, dataset)
    }
    return sorted(found)


def covered(ctx: RetentionContext, zone: str, dataset: str, every_s: int) -> dict[str, set[str]]:
    """Per source partition key, the file names the committed rollup of that level was built from."""
    position = ctx.catalog.get_watermark(DOWNSAMPLE_OWNER, level_key(zone, dataset, every_s)) or {}
    return {key: set(names) for key, names in position.get("covered", {}).items()}


def processed_days(ctx: RetentionContext, dataset: str) -> set[date]:
    """Days (UTC) every pipeline task of ``dataset`` processed successfully; empty if none ran."""
    done: dict[str, set[date]] = {}
    for record in ctx.catalog.runs(kind="pipeline", limit=1_000_000):
        if not record.name.startswith(f"{dataset}/"):
            continue
        days = done.setdefault(record.name, set())
        if record.status != "success" or record.interval_start is None or record.interval_end is None:
            continue
        day = record.interval_start.astimezone(UTC).date()
        last = (record.interval_end.astimezone(UTC) - timedelta(microseconds=1)).date()
        while day <= last:
            days.add(day)
            day += timedelta(days=1)
    if not done:
        return set()
    return set.intersection(*done.values())


def live_models(ctx: RetentionContext) -> bool:
    """Whether some model is live (a champion or challenger), so its training window is kept."""
    if ctx.registry is not None:
        try:
            return any(v.aliases for v in ctx.registry.versions())
        except Exception as exc:  # an unreachable registry must keep data, not fail retention
            log.warning("registry unavailable (%s); keeping the training window", exc)
            return True
    return bool(ctx.catalog.models())


def protected_cutoff(
    ctx: RetentionContext, zone: str, cut: int, now: int, live: bool
) -> tuple[int, str | None]:
    """``cut`` lowered to the floor and the training window; with the reason when lowered."""
    why = None
    floor = now - int(ctx.settings.floor_days * _US_PER_DAY)
    if cut > floor:
        cut, why = floor, f"floor of {ctx.settings.floor_days:g} day(s)"
    if live and zone in TRAINING_ZONES:
        window = now - int(ctx.settings.training_days * _US_PER_DAY)
        if cut > window:
            cut, why = window, f"training window of {ctx.settings.training_days:g} day(s) of a live model"
    return cut, why


def held(holds: list[Hold], target: str, name: str) -> tuple[bool, list[str]]:
    """``(whole, series globs)``: whether a hold pins all of ``target/name``, and the series pinned."""
    series = []
    for hold in holds:
        if hold.pins(target, name):
            if hold.series == "*":
                return True, []
            series.append(hold.series)
    return False, series


def day_of(start: datetime) -> date:
    """The UTC day of a partition's start."""
    return start.astimezone(UTC).date()


def day_start_us(day: date) -> int:
    """The first µs of a UTC day."""
    return to_us(datetime(day.year, day.month, day.day, tzinfo=UTC))


def describe_us(us: int) -> str:
    """An instant for messages and plans."""
    return from_us(us).isoformat()


def jsonable(value: Any) -> Any:
    """Sets as sorted lists (for the catalog's JSON)."""
    if isinstance(value, set):
        return sorted(value)
    return value
