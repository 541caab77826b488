"""Execute a plan, exactly and resumably; undo a run within the soft-delete window.

Each item touches only the files (or rows) the plan names. Lake files are not deleted but moved
to ``<lake>/_trash/<run>/`` (readers never look there), where they stay ``[retention]
soft_delete_days`` days: :func:`undo` moves them back, a later plan purges them. For a partial
partition the kept rows are first written as one new file, then the old files moved: a crash in
between leaves duplicates of equal values, which reads resolve. An archive's data file is written
before its manifest and the removal comes after both. The run's progress is a journal in the
catalog (committed after each item), and an unfinished run is resumed before anything new, so a
crash at any point leaves a state the next run completes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from sparkhu.errors import NotFoundError, SparkhuError
from sparkhu.retention import archive, downsample, guards
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import TRASH, Item, Plan, load_plan, make_plan
from sparkhu.retention.plan import interval as plan_interval
from sparkhu.retention.policies import holds, policies
from sparkhu.storage.lake import ZONES
from sparkhu.storage.writes import PartitionWrite, time_range, writing_run
from sparkhu.timeaxis import from_us

log = logging.getLogger(__name__)

RUN_OWNER = "retention.run"
OPEN_KEY = "open"

ROWS = "_rows"
"""Folder of a run's trash holding the rows it deleted from the catalog (predictions, runs)."""

PASS_LEASE = "retention.pass"
"""The catalog lease one retention pass per home holds (scheduler, CLI, gateway alike)."""

Fault = Callable[[str], None]
"""Called at each step (``"archive-data"``, ``"archived"``, ``"rewritten"``, ``"moved"``, ``"item"``);
the crash tests kill the process from it."""


@dataclass
class ApplyResult:
    """What one run did."""

    run_id: str
    plan_id: str
    done: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    archived: int = 0
    rolled: int = 0
    """Source rows read into downsample levels (not removed: ``rows`` counts what left the target)."""
    seconds: float = 0.0


class RetentionBusy(SparkhuError):
    """Another retention pass holds this home's pass lease."""


@contextmanager
def exclusive(ctx: RetentionContext, actor: str) -> Iterator[None]:
    """Hold the home's retention pass lease (a catalog row: works across processes and hosts, on
    SQLite and PostgreSQL) while the block runs; :class:`RetentionBusy` naming the holder if another
    pass has it. Re-entrant per context; a heartbeat thread renews it, and a holder that died lets
    it lapse after ``ctx.lease_ttl_s``."""
    if ctx.leases:
        ctx.leases += 1
        try:
            yield
        finally:
            ctx.leases -= 1
        return
    holder = f"{actor}/{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    info = {"actor": actor, "pid": os.getpid(), "host": socket.gethostname()}
    expires, current = ctx.catalog.acquire_lease(PASS_LEASE, holder, ctx.lease_ttl_s, info)
    if expires is None:
        raise RetentionBusy(
            f"a retention pass is already running on this home ({current.get('actor')}, pid "
            f"{current.get('pid')} on {current.get('host')}, since "
            f"{from_us(int(current['since'])).isoformat(timespec='seconds')}, lease until "
            f"{from_us(int(current['expires'])).isoformat(timespec='seconds')}); try again when it ends"
        )
    held = {"expires": expires}
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ctx.lease_ttl_s / 3):
            try:
                renewed = ctx.catalog.renew_lease(PASS_LEASE, held["expires"], ctx.lease_ttl_s)
            except SparkhuError as exc:  # a catalog hiccup: try again at the next beat
                log.warning("retention pass lease not renewed: %s", exc)
                continue
            if renewed is None:
                log.error("retention pass lease %s lost (expired without heartbeat)", holder)
                return
            held["expires"] = renewed

    thread = threading.Thread(target=beat, name="retention-lease", daemon=True)
    thread.start()
    ctx.leases = 1
    try:
        yield
    finally:
        ctx.leases = 0
        stop.set()
        thread.join()
        ctx.catalog.release_lease(PASS_LEASE, held["expires"])


def run(ctx: RetentionContext, *, actor: str = "retention", fault: Fault | None = None) -> list[ApplyResult]:
    """One retention pass: finish any interrupted run, then plan and apply a new one (holding the
    home's pass lease: :class:`RetentionBusy` if another pass runs)."""
    with exclusive(ctx, actor):
        results = [
            apply_plan(ctx, load_plan(ctx, plan_id), actor=actor, fault=fault) for plan_id in open_runs(ctx)
        ]
        results.append(apply_plan(ctx, make_plan(ctx), actor=actor, fault=fault))
        return results


def open_runs(ctx: RetentionContext) -> list[str]:
    """Plans whose run started and did not finish."""
    return list((ctx.catalog.get_watermark(RUN_OWNER, OPEN_KEY) or {}).get("plans", []))


def apply_plan(
    ctx: RetentionContext,
    plan: Plan,
    *,
    actor: str = "retention",
    fault: Fault | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ApplyResult:
    """Execute ``plan``'s items in order (resuming its run when it was interrupted), holding the
    home's pass lease (:class:`RetentionBusy` if another pass runs)."""
    with exclusive(ctx, actor):
        return _apply_plan(ctx, plan, actor, fault, progress)


def _apply_plan(
    ctx: RetentionContext,
    plan: Plan,
    actor: str,
    fault: Fault | None,
    progress: Callable[[int, int], None] | None,
) -> ApplyResult:
    began = time.perf_counter()
    fault = fault or (lambda _: None)
    archive.recover(ctx)
    journal = ctx.catalog.get_watermark(RUN_OWNER, plan.id)
    if journal is None:
        journal = {
            "run_id": f"r{ctx.now()}-{uuid.uuid4().hex[:4]}",
            "plan": plan.id,
            "done": [],
            "skipped": [],
            "rows": 0,
            "bytes": 0,
            "archived": 0,
            "status": "running",
        }
        ctx.catalog.set_watermark(RUN_OWNER, plan.id, journal)
        _set_open(ctx, plan.id, True)
        ctx.catalog.audit(
            actor,
            "run.start",
            f"plan/{plan.id}",
            {"run": journal["run_id"], "items": len(plan.items), "rows": plan.rows, "bytes": plan.bytes},
        )
    result = ApplyResult(
        journal["run_id"],
        plan.id,
        list(journal["done"]),
        list(journal["skipped"]),
        journal["rows"],
        journal["bytes"],
        journal["archived"],
        journal.get("rolled", 0),
    )
    if journal["status"] == "done":
        return result
    executor = _Executor(ctx, plan, result.run_id, fault)
    for n, item in enumerate(plan.items):
        if item.id in result.done or any(s["item"] == item.id for s in result.skipped):
            continue
        outcome = executor.execute(item)
        if isinstance(outcome, str):
            result.skipped.append({"item": item.id, "reason": outcome})
            ctx.catalog.audit(
                actor, "skip", _what(item), {"plan": plan.id, "item": item.id, "reason": outcome}
            )
        else:
            rows, size, archived = outcome
            result.done.append(item.id)
            if item.action == "downsample":
                result.rolled += rows
            else:
                result.rows += rows
            result.bytes += size
            result.archived += archived
            ctx.catalog.audit(
                actor,
                item.action,
                _what(item),
                {
                    "plan": plan.id,
                    "run": result.run_id,
                    "item": item.id,
                    "policy": item.policy,
                    "mode": item.mode,
                    "rows": rows,
                    "bytes": size,
                    "archived": archived,
                    **({"cutoff": from_us(item.cutoff_us).isoformat()} if item.cutoff_us is not None else {}),
                },
            )
        journal.update(
            rolled=result.rolled,
            done=result.done,
            skipped=result.skipped,
            rows=result.rows,
            bytes=result.bytes,
            archived=result.archived,
        )
        ctx.catalog.set_watermark(RUN_OWNER, plan.id, journal)
        fault("item")
        if progress is not None:
            progress(n + 1, len(plan.items))
    journal["status"] = "done"
    ctx.catalog.set_watermark(RUN_OWNER, plan.id, journal)
    _set_open(ctx, plan.id, False)
    result.seconds = time.perf_counter() - began
    ctx.catalog.audit(
        actor,
        "run.finish",
        f"plan/{plan.id}",
        {
            "run": result.run_id,
            "done": len(result.done),
            "skipped": len(result.skipped),
            "rows": result.rows,
            "bytes": result.bytes,
        },
    )
    return result


def undo(ctx: RetentionContext, run_id: str, *, actor: str = "retention") -> int:
    """Move the lake files a run deleted back from the trash, and insert the prediction and run
    rows it deleted again (a key written since keeps its newer row); returns how many files.

    NotFoundError when the run left nothing in the trash (unknown, purged, or already undone).
    """
    lake = ctx.lake
    fs = lake.filesystem
    root = f"{lake.base}/{TRASH}/{run_id}"
    files = [
        i
        for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True))
        if i.type == pafs.FileType.File
    ]
    if not files:
        raise NotFoundError(f"retention run {run_id!r} has nothing in the trash (unknown, purged or undone)")
    rows = 0
    restored: set[tuple[str, str, str]] = set()
    for info in files:
        rel = info.path[len(root) + 1 :]
        if rel.startswith(f"{ROWS}/"):
            if info.path.endswith(".json"):
                rows += _put_back(ctx, info.path)
            fs.delete_file(info.path)
        else:
            lake.move(info.path, f"{lake.base}/{rel}")
            parts = rel.split("/")
            if len(parts) >= 4 and parts[0] in ZONES:  # zone/dataset/<key...>/file
                restored.add((parts[0], parts[1], "/".join(parts[2:-1])))
    for zone, dataset, key in sorted(restored):
        record_partition(ctx, zone, dataset, key, f"retention:undo:{run_id}")
    try:
        fs.delete_dir(root)
    except FileNotFoundError:
        pass
    ctx.catalog.audit(actor, "undo", f"run/{run_id}", {"files": len(files), "rows": rows})
    return len(files)


def record_partition(
    ctx: RetentionContext, zone: str, dataset: str, key: str, run: str, kept: pa.Table | None = None
) -> None:
    """Bring the catalog's record of a partition retention changed in line with the lake: what it
    holds now (files, rows, bytes and time range), written by ``run``; forgotten when nothing is left.
    ``kept``: the rows a trim kept (their range is the partition's when nothing was written beside
    them; else the stored range stays); none given (files put back), the range is read."""
    info = ctx.lake.partition(zone, dataset, key)
    if info is None:
        ctx.catalog.forget_partitions(zone, dataset, [key])
        return
    if kept is None:  # files put back: read their range
        first, last = ctx.lake.partition_range(zone, dataset, key)
    else:  # the rows a trim kept, when nothing was written beside them since planning
        first, last = time_range(kept) if info.files == 1 else (None, None)
    write = PartitionWrite(zone, dataset, key, info.files, info.rows, info.bytes, first, last, True, run)
    ctx.catalog.record_writes([write])


def _put_back(ctx: RetentionContext, path: str) -> int:
    """Insert the rows of one ``_rows`` trash file again; how many went back."""
    with ctx.lake.filesystem.open_input_stream(path) as src:
        doc = json.loads(src.read())
    target, rows = doc["target"], doc["rows"]
    if target == "runs":
        return int(ctx.catalog.put_back_runs(rows))
    if ctx.predictions is None:
        raise NotFoundError(f"cannot put back {target} rows of {path}: no prediction store")
    return int(ctx.predictions.put_back(target.split(".", 1)[1], rows))


def trash_runs(ctx: RetentionContext) -> list[dict[str, Any]]:
    """Runs with files in the trash: run id, files, bytes."""
    fs = ctx.lake.filesystem
    out = []
    root = f"{ctx.lake.base}/{TRASH}"
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if info.type == pafs.FileType.Directory:
            files = [
                f
                for f in fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
                if f.type == pafs.FileType.File
            ]
            out.append({"run": info.base_name, "files": len(files), "bytes": sum(f.size or 0 for f in files)})
    return sorted(out, key=lambda r: r["run"])


def _set_open(ctx: RetentionContext, plan_id: str, is_open: bool) -> None:
    plans = [p for p in open_runs(ctx) if p != plan_id] + ([plan_id] if is_open else [])
    ctx.catalog.set_watermark(RUN_OWNER, OPEN_KEY, {"plans": plans})


def _what(item: Item) -> str:
    return "/".join(p for p in (item.target, item.name, item.key) if p)


class _Executor:
    def __init__(self, ctx: RetentionContext, plan: Plan, run_id: str, fault: Fault) -> None:
        self.ctx, self.plan, self.run_id, self.fault = ctx, plan, run_id, fault
        self.holds = holds(ctx)
        self.policies = policies(ctx)

    def execute(self, item: Item) -> tuple[int, int, int] | str:
        """(rows, bytes, archived rows), or why the item was skipped."""
        if item.mode in ("drop", "trim"):
            return self.lake_item(item)
        if item.mode == "rollup":
            d = item.detail
            days = [date.fromisoformat(x) for x in d["days"]]
            with writing_run(f"retention:{self.run_id}"):  # the rollup's partitions are this run's
                rows_in, _ = downsample.build_level(
                    self.ctx, d["base"], item.target, item.name, d["every_s"], days
                )
            return rows_in, 0, 0
        if item.mode == "purge":
            fs = self.ctx.lake.filesystem
            try:
                fs.delete_dir(f"{self.ctx.lake.base}/{TRASH}/{item.name}")
            except FileNotFoundError:
                return "already purged"
            return 0, item.bytes, 0
        if item.mode == "dispose":
            archive.dispose(self.ctx, item.detail["manifest"])
            return item.rows, item.bytes, 0
        if guards.held(self.holds, item.target, item.name)[0]:
            return "legal hold placed after planning"
        if item.mode == "topic-config":
            self.ctx.get_bus().set_topic_configs(item.name, item.detail["set"])
            return 0, 0, 0
        if item.target == "bus":
            assert item.cutoff_us is not None
            return self.ctx.get_bus().delete_before(item.name, item.cutoff_us // 1000, consumed=True), 0, 0
        if item.target.startswith("predictions."):
            assert item.cutoff_us is not None
            rows = self.ctx.predictions.delete_before(
                from_us(item.cutoff_us),
                item.detail.get("series"),
                tables=[item.name],
                keep=lambda table, found: self.keep_rows(item, f"predictions.{table}", found),
            )
            return rows, 0, 0
        if item.target == "runs":
            assert item.cutoff_us is not None
            kind = None if item.name == "*" else item.name
            rows = self.ctx.catalog.delete_runs(
                from_us(item.cutoff_us),
                kind=kind,
                keep_kinds=("pipeline",),
                keep=lambda found: self.keep_rows(item, "runs", found),
            )
            return rows, 0, 0
        if item.mode == "report":
            return self.report_item(item)
        if item.target == "registry":
            self.ctx.registry.delete_version(item.name, item.detail["version"])
            return 1, 0, 0
        return f"unknown item mode {item.mode!r}"

    def keep_rows(self, item: Item, target: str, rows: list[dict[str, Any]]) -> None:
        """Soft delete of rows: write them to ``<trash>/<run>/_rows/<target>-<item>.json`` before
        the caller's transaction deletes them (a crash in between leaves the rows where they were;
        the resumed item writes the file again); :func:`undo` inserts them back, the trash purge
        after ``soft_delete_days`` removes the file."""
        if not rows:
            return
        fs = self.ctx.lake.filesystem
        folder = f"{self.ctx.lake.base}/{TRASH}/{self.run_id}/{ROWS}"
        fs.create_dir(folder, recursive=True)
        body = json.dumps({"target": target, "rows": rows}, allow_nan=True).encode()
        path = f"{folder}/{target}-{item.id}.json"
        with fs.open_output_stream(f"{path}.tmp") as out:
            out.write(body)
        fs.move(f"{path}.tmp", path)

    def report_item(self, item: Item) -> tuple[int, int, int] | str:
        """Archive (a copy of every file under ``<archive>/reports/``) then delete one day folder."""
        assert self.ctx.reports is not None and item.key is not None
        folder = os.path.join(self.ctx.reports, item.name, item.key)
        if not os.path.isdir(folder):
            return "already removed"
        files = [os.path.join(w, n) for w, _, names in os.walk(folder) for n in names]
        size = sum(os.path.getsize(f) for f in files)
        if item.action == "archive":
            root = archive.ArchiveRoot.open(self.ctx.archive)
            for path in files:
                rel = os.path.relpath(path, self.ctx.reports).replace(os.sep, "/")
                target = root.path(f"reports/{rel}")
                root.fs.create_dir(os.path.dirname(target), recursive=True)
                with open(path, "rb") as src, root.fs.open_output_stream(target) as dst:
                    dst.write(src.read())
            self.fault("archived")
        shutil.rmtree(folder)
        return 0, size, 0

    def lake_item(self, item: Item) -> tuple[int, int, int] | str:
        ctx, lake = self.ctx, self.ctx.lake
        whole, held_series = guards.held(self.holds, item.target, item.name)
        if whole:
            return "legal hold placed after planning"
        if set(held_series) - set(item.exclude):
            return "a series of it was put on legal hold after planning"
        fs = lake.filesystem
        infos = fs.get_file_info(item.files)
        present = [i.path for i in infos if i.type == pafs.FileType.File]
        sizes = {i.path: i.size or 0 for i in infos}
        if not present:
            return "its files are gone (compacted or removed since planning)"
        levels = guards.consumers(self.policies, item.target, item.name)
        for level in levels:
            marks = guards.covered(ctx, *level).get(item.key, set())
            missing = [p for p in present if os.path.basename(p) not in marks]
            if missing:
                return f"not covered by downsample level {level[2]}s"
        where, params = item.condition()
        if item.mode == "drop" and item.action != "archive":
            dropped_rows = item.rows if len(present) == len(item.files) else sum(lake.file_rows(present))
            kept = None
            dropped = None
        else:
            dropped, kept = lake.split_files(item.target, item.name, present, where, params)
            dropped_rows = dropped.num_rows
        archived = 0
        if item.action == "archive" and dropped is not None and dropped.num_rows:
            archive.write(ctx, f"{self.plan.id}-{item.id}", item, dropped, self.fault)
            archived = dropped.num_rows
            self.fault("archived")
        kept_file = None
        if item.mode == "trim" and kept is not None and kept.num_rows:
            kept_file = lake.rewrite_partition(item.target, item.name, item.key, present, kept)
            self.fault("rewritten")
        start, end = plan_interval(item.target, item.name, item.key)
        cut = guards.to_us(end) if item.mode == "drop" else int(item.cutoff_us or 0)
        for level in levels:
            downsample.note_removal(ctx, level, item.key, guards.day_of(start), cut, kept_file)
        trash = f"{lake.base}/{TRASH}/{self.run_id}"
        for path in present:
            lake.move(path, f"{trash}/{path[len(lake.base) + 1 :]}")
            self.fault("moved")
        assert item.key is not None
        record_partition(ctx, item.target, item.name, item.key, f"retention:{self.run_id}", kept)
        freed = sum(sizes[p] for p in present)
        return dropped_rows, freed if item.mode == "drop" else item.bytes, archived
