"""The dry-run plan: every action a retention pass would take, with rows, bytes and partitions.

:func:`make_plan` looks, touches nothing, and stores the plan in the catalog;
:func:`sparkhu.retention.apply.apply_plan` executes exactly its items (each names the files it
may touch, so a file written after planning is never touched). What a guard kept from a policy
is listed under ``protected`` with the reason.
"""

from __future__ import annotations

import fnmatch
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow.fs as pafs

from sparkhu.errors import NotFoundError
from sparkhu.retention import archive, guards
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.guards import (
    consumers,
    covered,
    day_of,
    held,
    ladders,
    processed_days,
    protected_cutoff,
    rollup_name,
)
from sparkhu.retention.policies import Hold, Policy, cutoff_us, has_age, holds, kind_of, policies
from sparkhu.storage.lake import PartitionInfo, key_start_us
from sparkhu.timeaxis import from_us

PLAN_OWNER = "retention.plan"
TRASH = "_trash"
_US_PER_DAY = 86_400_000_000


@dataclass
class Item:
    """One action of a plan. ``files`` are the lake files it may touch (paths in the lake's filesystem)."""

    id: str
    policy: str
    target: str
    name: str
    action: str  # delete | archive | downsample | purge
    mode: str  # drop | trim (lake); rollup; rows (bus, predictions, runs); version; purge
    key: str = ""
    files: list[str] = field(default_factory=list)
    cutoff_us: int | None = None
    series: str = "*"
    exclude: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    partitions: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def condition(self) -> tuple[str, dict[str, Any]]:
        """The DuckDB condition of the rows this (lake) item removes, with its parameters."""
        column = "quarantined_at" if self.target == "quarantine" else "ts"
        parts = [f'epoch_us("{column}") < $cut'] if self.cutoff_us is not None else ["TRUE"]
        params: dict[str, Any] = {"cut": self.cutoff_us} if self.cutoff_us is not None else {}
        if self.series != "*":
            parts.append("series_id::VARCHAR GLOB $series")
            params["series"] = self.series
        for i, pattern in enumerate(self.exclude):
            parts.append(f"NOT (series_id::VARCHAR GLOB $x{i})")
            params[f"x{i}"] = pattern
        return " AND ".join(parts), params


@dataclass
class Plan:
    """A retention plan: its items in execution order and what the guards protected."""

    id: str
    created_us: int
    items: list[Item] = field(default_factory=list)
    protected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows the plan removes (deletes or archives) or rolls up."""
        return sum(i.rows for i in self.items)

    @property
    def bytes(self) -> int:
        """Bytes the plan frees (lake files, estimated for partial partitions)."""
        return sum(i.bytes for i in self.items if i.action != "downsample")

    @property
    def partitions(self) -> int:
        """Lake partitions the plan touches."""
        return sum(i.partitions for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-able data."""
        return {
            "id": self.id,
            "created_us": self.created_us,
            "items": [asdict(i) for i in self.items],
            "protected": self.protected,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """The plan back from :meth:`to_dict`."""
        return cls(
            data["id"], data["created_us"], [Item(**i) for i in data["items"]], list(data["protected"])
        )


def load_plan(ctx: RetentionContext, plan_id: str) -> Plan:
    """A stored plan; NotFoundError naming the id."""
    data = ctx.catalog.get_watermark(PLAN_OWNER, plan_id)
    if data is None:
        raise NotFoundError(f"no retention plan {plan_id!r}; make one with `sparkhu retention plan`")
    return Plan.from_dict(data)


def make_plan(ctx: RetentionContext, *, only: list[Policy] | None = None, store: bool = True) -> Plan:
    """Plan one retention pass over every policy in force (or ``only`` those); touches no data."""
    now = ctx.now()
    plan = Plan(f"p{now}-{uuid.uuid4().hex[:6]}", now)
    everything = policies(ctx)
    chosen = [p for p in (only if only is not None else everything) if p.enabled]
    planner = _Planner(ctx, plan, everything, holds(ctx), now)
    planner.purge()
    for policy in chosen:
        if policy.action == "downsample":
            planner.downsample(policy)
    for policy in chosen:
        kind = kind_of(policy.target)
        if kind == "lake":
            planner.lake(policy)
        elif kind == "bus":
            planner.bus(policy)
        elif kind == "predictions":
            planner.predictions(policy)
        elif kind == "runs":
            planner.runs(policy)
        elif kind == "reports":
            planner.reports(policy)
        elif kind == "archive":
            planner.archive(policy)
        else:
            planner.registry(policy)
    if store:
        ctx.catalog.set_watermark(PLAN_OWNER, plan.id, plan.to_dict())
        ctx.catalog.set_watermark(PLAN_OWNER, "latest", {"id": plan.id})
    return plan


class _Planner:
    def __init__(
        self, ctx: RetentionContext, plan: Plan, everything: list[Policy], holds_: list[Hold], now: int
    ) -> None:
        self.ctx, self.plan, self.everything, self.holds, self.now = ctx, plan, everything, holds_, now
        self.live = guards.live_models(ctx)
        self.rolled: dict[tuple[str, str, int], set[date]] = {}  # days a rollup item of this plan builds
        self._processed: dict[str, set[int]] = {}  # day numbers since the epoch

    def add(self, **fields: Any) -> Item:
        item = Item(id=f"i{len(self.plan.items):05d}", **fields)
        self.plan.items.append(item)
        return item

    def protect(self, policy: str, what: str, reason: str) -> None:
        self.plan.protected.append({"policy": policy, "what": what, "reason": reason})

    # ------------------------------------------------------------------ trash
    def purge(self) -> None:
        lake = self.ctx.lake
        fs = lake.filesystem
        root = f"{lake.base}/{TRASH}"
        keep_us = int(self.ctx.settings.soft_delete_days * _US_PER_DAY)
        for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
            run_us = _run_us(info.base_name)
            if info.type != pafs.FileType.Directory or run_us is None or run_us >= self.now - keep_us:
                continue
            files = [
                f
                for f in fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
                if f.type == pafs.FileType.File
            ]
            self.add(
                policy="soft-delete",
                target="trash",
                name=info.base_name,
                action="purge",
                mode="purge",
                bytes=sum(f.size or 0 for f in files),
                detail={"files": len(files)},
            )

    # ------------------------------------------------------------------ lake
    def lake(self, policy: Policy) -> None:
        ctx = self.ctx
        for zone, dataset in ctx.lake.datasets(policy.target):
            if not fnmatch.fnmatchcase(dataset, policy.match):
                continue
            cut = cutoff_us(policy, self.now) if has_age(policy) else None
            action = "archive" if policy.action == "archive" else "delete"
            self.lake_dataset(policy.name, zone, dataset, cut, action, policy.series, policy.max_bytes)
            if policy.action == "downsample":
                for level in policy.levels:
                    name = rollup_name(dataset, level.every_s)
                    if ("analysis", name) in ctx.lake.datasets("analysis"):
                        level_cut = self.now - int(level.keep_days * _US_PER_DAY)
                        self.lake_dataset(
                            f"{policy.name}@{level.every_s}s",
                            "analysis",
                            name,
                            level_cut,
                            "delete",
                            "*",
                            None,
                        )

    def lake_dataset(
        self,
        policy: str,
        zone: str,
        dataset: str,
        cut: int | None,
        action: str,
        series: str,
        quota: int | None,
    ) -> None:
        ctx = self.ctx
        what = f"{zone}/{dataset}"
        whole, held_series = held(self.holds, zone, dataset)
        if whole:
            self.protect(policy, what, "legal hold")
            return
        if zone == "quarantine" and (series != "*" or held_series):
            series, held_series = "*", []  # quarantined records carry no series id
        listing = ctx.lake.partition_files(zone, dataset)
        total = sum(size for _, files in listing for _, size in files)
        limit, why = protected_cutoff(ctx, zone, self.now, self.now, self.live)
        if cut is not None:
            lowered, reason = protected_cutoff(ctx, zone, cut, self.now, self.live)
            if lowered < cut:
                self.protect(policy, what, f"rows from {from_us(lowered).isoformat()} kept: {reason}")
            cut = lowered
        levels = consumers(self.everything, zone, dataset)
        marks = {lvl: covered(ctx, *lvl) for lvl in levels}
        planned: list[Item] = []
        freed = 0
        for key, files in listing:
            start, end = interval_us(zone, dataset, key)
            if cut is None or start >= cut:
                break
            item = self._partition(
                policy, zone, dataset, key, files, start, end, cut, action, series, held_series, levels, marks
            )
            if item is not None:
                planned.append(item)
                freed += item.bytes
        if quota is not None and total - freed > quota:
            done = {i.key for i in planned}
            for key, files in listing:
                if total - freed <= quota:
                    break
                start, end = interval_us(zone, dataset, key)
                if key in done or end > limit:
                    if end > limit:
                        self.protect(policy, what, f"quota {quota} B not reached: {why}")
                        break
                    continue
                item = self._partition(
                    policy,
                    zone,
                    dataset,
                    key,
                    files,
                    start,
                    end,
                    end,
                    action,
                    "*",
                    held_series,
                    levels,
                    marks,
                )
                if item is not None:
                    item.detail["quota"] = quota
                    freed += item.bytes
        rows = [
            i
            for i in self.plan.items
            if i.target == zone and i.name == dataset and i.mode == "drop" and not i.rows
        ]
        if rows:
            counts = ctx.lake.file_rows([f for i in rows for f in i.files])
            at = 0
            for i in rows:
                i.rows = sum(counts[at : at + len(i.files)])
                at += len(i.files)

    def _partition(
        self,
        policy: str,
        zone: str,
        dataset: str,
        key: str,
        files: list[tuple[str, int]],
        start: int,
        end: int,
        cut: int,
        action: str,
        series: str,
        held_series: list[str],
        levels: list[tuple[str, str, int]],
        marks: dict[tuple[str, str, int], dict[str, set[str]]],
    ) -> Item | None:
        what = f"{zone}/{dataset}/{key}"
        if zone == "raw":
            if dataset not in self._processed:
                self._processed[dataset] = {_day_number(d) for d in processed_days(self.ctx, dataset)}
            if start // _US_PER_DAY not in self._processed[dataset]:
                self.protect(policy, what, "not yet processed by the cleaning pipeline")
                return None
        ok = files
        if levels:
            ok = []
            rolled = [lvl for lvl in levels if from_us(start).date() in self.rolled.get(lvl, set())]
            for path, size in files:
                name = path.rsplit("/", 1)[-1]
                pending = [
                    lvl for lvl in levels if lvl not in rolled and name not in marks[lvl].get(key, set())
                ]
                if pending:
                    self.protect(
                        policy, f"{what}/{name}", f"not yet covered by downsample level {pending[0][2]}s"
                    )
                else:
                    ok.append((path, size))
        if not ok:
            return None
        whole = end <= cut and series == "*" and not held_series
        paths = [p for p, _ in ok]
        size = sum(s for _, s in ok)
        if whole:
            return self.add(
                policy=policy,
                target=zone,
                name=dataset,
                action=action,
                mode="drop",
                key=key,
                files=paths,
                cutoff_us=None,
                rows=0,
                bytes=size,
                partitions=1,
            )
        item = Item("", policy, zone, dataset, action, "trim", key, paths, cut, series, list(held_series))
        where, params = item.condition()
        dropped, kept = self.ctx.lake.split_files(zone, dataset, paths, where, params)
        if dropped.num_rows == 0:
            return None
        total = dropped.num_rows + kept.num_rows
        return self.add(
            policy=policy,
            target=zone,
            name=dataset,
            action=action,
            mode="trim",
            key=key,
            files=paths,
            cutoff_us=cut,
            series=series,
            exclude=list(held_series),
            rows=dropped.num_rows,
            bytes=size * dropped.num_rows // max(total, 1),
            partitions=1,
        )

    # ------------------------------------------------------------------ downsample
    def downsample(self, policy: Policy) -> None:
        ctx = self.ctx
        for zone, dataset in ctx.lake.datasets(policy.target):
            if not fnmatch.fnmatchcase(dataset, policy.match):
                continue
            for rungs in ladders([policy], zone, dataset):
                previous: set[date] = set()
                for src_zone, src_dataset, every_s in rungs:
                    lvl = (src_zone, src_dataset, every_s)
                    marks = covered(ctx, *lvl)
                    listing = (
                        ctx.lake.partition_files(src_zone, src_dataset)
                        if (src_zone, src_dataset) in ctx.lake.datasets(src_zone)
                        else []
                    )
                    days = set(previous)
                    rows = 0
                    for key, files in listing:
                        names = {os.path.basename(p) for p, _ in files}
                        if not names <= marks.get(key, set()):
                            days.add(day_of(interval(src_zone, src_dataset, key)[0]))
                    if not days:
                        previous = set()
                        continue
                    self.rolled[lvl] = days
                    keys = [k for k, _ in listing if day_of(interval(src_zone, src_dataset, k)[0]) in days]
                    fmap = dict(listing)
                    counts = ctx.lake.file_rows([p for k in keys for p, _ in fmap[k]])
                    rows = sum(counts)
                    self.add(
                        policy=policy.name,
                        target=src_zone,
                        name=src_dataset,
                        action="downsample",
                        mode="rollup",
                        rows=rows,
                        detail={
                            "base": dataset,
                            "every_s": every_s,
                            "days": sorted(d.isoformat() for d in days),
                        },
                    )
                    previous = days

    # ------------------------------------------------------------------ bus, predictions, runs, registry
    def bus(self, policy: Policy) -> None:
        bus = self.ctx.get_bus()
        if bus is not None and hasattr(bus, "set_topic_configs"):
            self.kafka_topics(policy, bus)
            return
        if not has_age(policy):
            return
        if bus is None or not hasattr(bus, "delete_before"):
            self.protect(
                policy.name, "bus", "this bus keeps messages by its own retention (Kafka: retention.ms)"
            )
            return
        cut = self._cut(policy, "bus")
        for topic in sorted(bus.topics()):
            if not fnmatch.fnmatchcase(topic, policy.match):
                continue
            if held(self.holds, "bus", topic)[0]:
                self.protect(policy.name, f"bus/{topic}", "legal hold")
                continue
            rows = bus.delete_before(topic, cut // 1000, consumed=True, dry_run=True)
            if rows:
                self.add(
                    policy=policy.name,
                    target="bus",
                    name=topic,
                    action="delete",
                    mode="rows",
                    cutoff_us=cut,
                    rows=rows,
                )

    def kafka_topics(self, policy: Policy, bus: Any) -> None:
        """Kafka removes old records itself: plan the topic configs that make it keep what the policy
        keeps (``retention.ms`` = the kept age, floor included; ``retention.bytes`` = the quota split
        over the topic's partitions, as Kafka counts it per partition), where they differ."""
        if not has_age(policy) and policy.max_bytes is None:
            return
        counts = {t: n for t, n in bus.topics().items() if fnmatch.fnmatchcase(t, policy.match)}
        current = bus.topic_configs(list(counts), ["retention.ms", "retention.bytes"]) if counts else {}
        for topic, partitions in counts.items():
            if held(self.holds, "bus", topic)[0]:
                self.protect(policy.name, f"bus/{topic}", "legal hold (topic configs left as they are)")
                continue
            wanted: dict[str, str] = {}
            if has_age(policy):
                wanted["retention.ms"] = str(max(1, (self.now - self._cut(policy, "bus")) // 1000))
            if policy.max_bytes is not None:
                wanted["retention.bytes"] = str(max(1, policy.max_bytes // max(1, partitions)))
            was = current.get(topic, {})
            change = {k: v for k, v in wanted.items() if was.get(k) != v}
            if change:
                self.add(
                    policy=policy.name,
                    target="bus",
                    name=topic,
                    action="configure",
                    mode="topic-config",
                    detail={"set": change, "was": {k: was.get(k) for k in change}, "partitions": partitions},
                )

    def predictions(self, policy: Policy) -> None:
        if not has_age(policy):
            return
        store = self.ctx.predictions
        if store is None:
            return
        table = policy.target.split(".", 1)[1]
        whole, held_series = held(self.holds, policy.target, table)
        if whole:
            self.protect(policy.name, policy.target, "legal hold")
            return
        cut = self._cut(policy, policy.target)
        series: list[str] | None = None
        if policy.series != "*" or held_series:
            series = [
                s
                for s in store.series()
                if fnmatch.fnmatchcase(s, policy.series)
                and not any(fnmatch.fnmatchcase(s, h) for h in held_series)
            ]
        rows = store.delete_before(from_us(cut), series, tables=[table], dry_run=True)
        if rows:
            self.add(
                policy=policy.name,
                target=policy.target,
                name=table,
                action="delete",
                mode="rows",
                cutoff_us=cut,
                rows=rows,
                detail={"series": series},
            )

    def runs(self, policy: Policy) -> None:
        if not has_age(policy):
            return
        cut = self._cut(policy, "runs")
        kind = None if policy.match == "*" else policy.match
        rows = self.ctx.catalog.delete_runs(from_us(cut), kind=kind, keep_kinds=("pipeline",), dry_run=True)
        if rows:
            self.add(
                policy=policy.name,
                target="runs",
                name=policy.match,
                action="delete",
                mode="rows",
                cutoff_us=cut,
                rows=rows,
            )

    def reports(self, policy: Policy) -> None:
        """One item per day folder ``<reports>/<dataset>/<day>`` whose interval ended before the cut."""
        root = self.ctx.reports
        if not has_age(policy) or root is None or not os.path.isdir(root):
            return
        cut = self._cut(policy, "reports")
        for dataset in sorted(os.listdir(root)):
            folder = os.path.join(root, dataset)
            if not os.path.isdir(folder) or not fnmatch.fnmatchcase(dataset, policy.match):
                continue
            if held(self.holds, "reports", dataset)[0]:
                self.protect(policy.name, f"reports/{dataset}", "legal hold")
                continue
            for day in sorted(os.listdir(folder)):
                end = report_end_us(day)
                if end is None or end > cut:
                    continue  # not a report day (the writer names them) or not old enough
                files = [
                    os.path.join(where, name)
                    for where, _, names in os.walk(os.path.join(folder, day))
                    for name in names
                ]
                self.add(
                    policy=policy.name,
                    target="reports",
                    name=dataset,
                    action="archive" if policy.action == "archive" else "delete",
                    mode="report",
                    key=day,
                    cutoff_us=cut,
                    bytes=sum(os.path.getsize(f) for f in files),
                    detail={"files": len(files)},
                )

    def registry(self, policy: Policy) -> None:
        registry = self.ctx.registry
        if registry is None or policy.keep_versions is None:
            return
        cut = self._cut(policy, "registry") if has_age(policy) else None
        by_name: dict[str, list[Any]] = {}
        for version in registry.versions():
            if fnmatch.fnmatchcase(version.name, policy.match):
                by_name.setdefault(version.name, []).append(version)
        for name, versions in sorted(by_name.items()):
            if held(self.holds, "registry", name)[0]:
                self.protect(policy.name, f"registry/{name}", "legal hold")
                continue
            for version in sorted(versions, key=lambda v: -v.version)[policy.keep_versions :]:
                if version.aliases:
                    self.protect(
                        policy.name,
                        f"registry/{name}/{version.version}",
                        f"aliased {', '.join(version.aliases)}",
                    )
                    continue
                if (
                    cut is not None
                    and version.created_at is not None
                    and guards.to_us(version.created_at) >= cut
                ):
                    continue
                self.add(
                    policy=policy.name,
                    target="registry",
                    name=name,
                    action="delete",
                    mode="version",
                    rows=1,
                    detail={"version": version.version},
                )

    def archive(self, policy: Policy) -> None:
        if not has_age(policy):
            return
        cut = self._cut(policy, "archive")
        for manifest in archive.manifests(self.ctx):
            if (
                not fnmatch.fnmatchcase(manifest["dataset"], policy.match)
                or (manifest["last_us"] or 0) >= cut
            ):
                continue
            if held(self.holds, manifest["zone"], manifest["dataset"])[0]:
                self.protect(policy.name, f"archive/{manifest['name']}", "legal hold")
                continue
            self.add(
                policy=policy.name,
                target="archive",
                name=manifest["dataset"],
                action="delete",
                mode="dispose",
                key=manifest["key"],
                rows=manifest["rows"],
                bytes=manifest["bytes"],
                detail={"manifest": manifest},
            )

    def _cut(self, policy: Policy, target: str) -> int:
        return protected_cutoff(self.ctx, target, cutoff_us(policy, self.now), self.now, False)[0]


def interval_us(zone: str, dataset: str, key: str) -> tuple[int, int]:
    """[start, end) in µs of a partition of a date or hourly layout."""
    layout = "date" if key.startswith("date=") else "hourly"
    start = key_start_us(layout, key)
    if start is None:
        start = guards.to_us(PartitionInfo(zone, dataset, key, 0, 0, 0).start)  # raises for a bad key
    return start, start + (_US_PER_DAY if layout == "date" else _US_PER_DAY // 24)


def report_end_us(folder: str) -> int | None:
    """End (µs, exclusive) of a report folder's interval: ``YYYY-MM-DD`` or ``YYYY-MM-DD_YYYY-MM-DD``
    (the pipeline's report writer names them so); None for any other name.

    >>> from_us(report_end_us("2024-01-01_2024-01-07")).date().isoformat()
    '2024-01-08'
    >>> report_end_us("index.html") is None
    True
    """
    last = folder.rsplit("_", 1)[-1]
    try:
        day = date.fromisoformat(last)
    except ValueError:
        return None
    if len(last) != 10 or not all(len(p) == 10 for p in folder.split("_")):
        return None
    return _day_number(day + timedelta(days=1)) * _US_PER_DAY


def _day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def interval(zone: str, dataset: str, key: str) -> tuple[datetime, datetime]:
    """[start, end) of a partition of a date or hourly layout."""
    layout = "date" if key.startswith("date=") else "hourly"
    start = key_start_us(layout, key)
    if start is None:
        start = guards.to_us(PartitionInfo(zone, dataset, key, 0, 0, 0).start)  # raises for a bad key
    width = timedelta(days=1) if layout == "date" else timedelta(hours=1)
    return from_us(start), from_us(start) + width


def _run_us(name: str) -> int | None:
    """The start (µs) of a retention run from its id ``r<µs>-<hex>``."""
    if name.startswith("r") and "-" in name and name[1 : name.index("-")].isdigit():
        return int(name[1 : name.index("-")])
    return None
