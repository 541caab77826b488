"""Archives: the rows a policy removes, as zstd Parquet at another URI, each with a manifest.

Layout under the archive root (a folder, ``file://`` or any pyarrow filesystem URI such as
``s3://bucket/archive``)::

    <zone>/<dataset>/<partition key>/<plan>-<item>.parquet
    _manifests/<plan>-<item>.json      zone, dataset, key, file, rows, bytes, sha256, first/last ts

The data file is written (atomically) before its manifest, and the manifest is what makes an
archive exist: :func:`recover` deletes any data file without one (a crash between the two), and
disposal deletes the manifest before the data. Writing the same item again is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkhu.errors import ConfigError, NotFoundError, StorageError
from sparkhu.retention.context import RetentionContext
from sparkhu.storage.lake import open_filesystem
from sparkhu.timeaxis import to_us

MANIFESTS = "_manifests"


@dataclass(frozen=True)
class ArchiveRoot:
    """An opened archive root: a pyarrow filesystem and the base path in it."""

    uri: str
    fs: pafs.FileSystem
    base: str

    @classmethod
    def open(cls, uri: str) -> ArchiveRoot:
        """Open ``uri`` (a folder or a URI with a registered scheme); ConfigError naming it otherwise."""
        try:
            fs, base = open_filesystem(uri)
        except (OSError, pa.ArrowException, ValueError, ConfigError) as exc:
            raise ConfigError(f"[retention] archive: cannot open {uri!r}: {exc}") from exc
        return cls(uri, fs, base.rstrip("/") or "/")

    def path(self, rel: str) -> str:
        """The path of ``rel`` under the root."""
        return f"{self.base}/{rel}"


def write(
    ctx: RetentionContext,
    name: str,
    item: Any,
    table: pa.Table,
    fault: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Archive ``table`` (the rows ``item`` removes) as ``name``; returns the manifest (existing or new)."""
    root = ArchiveRoot.open(ctx.archive)
    manifest_path = root.path(f"{MANIFESTS}/{name}.json")
    existing = _read_json(root, manifest_path)
    if existing is not None:
        return existing
    rel = f"{item.target}/{item.name}/{item.key}/{name}.parquet"
    data_path = root.path(rel)
    try:
        root.fs.create_dir(os.path.dirname(data_path), recursive=True)
        _write_atomic_parquet(table, root.fs, data_path)
        fault("archive-data")
        size = root.fs.get_file_info(data_path).size or 0
        with root.fs.open_input_stream(data_path) as stream:
            digest = hashlib.sha256(stream.read()).hexdigest()
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(
            f"cannot archive {item.target}/{item.name}/{item.key} to {root.uri}: {exc}"
        ) from exc
    column = "quarantined_at" if "quarantined_at" in table.column_names else "ts"
    times = table.column(column).cast(pa.int64()) if column in table.column_names else None
    manifest = {
        "name": name,
        "zone": item.target,
        "dataset": item.name,
        "key": item.key,
        "policy": item.policy,
        "file": rel,
        "rows": table.num_rows,
        "bytes": size,
        "sha256": digest,
        "first_us": pc.min(times).as_py() if times is not None and table.num_rows else None,
        "last_us": pc.max(times).as_py() if times is not None and table.num_rows else None,
        "created_us": ctx.now(),
    }
    _write_json(root, manifest_path, manifest)
    return manifest


def manifests(ctx: RetentionContext) -> list[dict[str, Any]]:
    """Every manifest of the archive, oldest data first."""
    root = ArchiveRoot.open(ctx.archive)
    found = []
    for info in root.fs.get_file_info(pafs.FileSelector(root.path(MANIFESTS), allow_not_found=True)):
        if info.base_name.endswith(".json"):
            data = _read_json(root, info.path)
            if data is not None:
                found.append(data)
    return sorted(found, key=lambda m: (m.get("first_us") or 0, m["name"]))


def recover(ctx: RetentionContext) -> int:
    """Delete archive data files without a manifest (and temporary files); returns how many."""
    root = ArchiveRoot.open(ctx.archive)
    known = {m["file"] for m in manifests(ctx)}
    removed = 0
    for info in root.fs.get_file_info(pafs.FileSelector(root.base, allow_not_found=True, recursive=True)):
        if info.type != pafs.FileType.File or info.path.startswith(root.path(MANIFESTS) + "/"):
            continue
        rel = info.path[len(root.base) + 1 :]
        if info.base_name.endswith(".tmp") or rel not in known:
            root.fs.delete_file(info.path)
            removed += 1
    return removed


def read(ctx: RetentionContext, manifest: dict[str, Any]) -> pa.Table:
    """The rows of one archive, checked against its manifest's checksum."""
    root = ArchiveRoot.open(ctx.archive)
    path = root.path(manifest["file"])
    try:
        with root.fs.open_input_stream(path) as stream:
            blob = stream.read()
    except FileNotFoundError as exc:
        raise NotFoundError(f"archive {manifest['name']}: {path} is missing") from exc
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise StorageError(f"archive {manifest['name']}: {path} does not match its manifest's checksum")
    return pq.read_table(pa.BufferReader(blob))


def dispose(ctx: RetentionContext, manifest: dict[str, Any]) -> None:
    """Delete one archive: the manifest first (an orphan data file is swept by :func:`recover`)."""
    root = ArchiveRoot.open(ctx.archive)
    for path in (root.path(f"{MANIFESTS}/{manifest['name']}.json"), root.path(manifest["file"])):
        try:
            root.fs.delete_file(path)
        except FileNotFoundError:
            pass


def restore(
    ctx: RetentionContext,
    *,
    zone: str | None = None,
    dataset: str | None = None,
    start: Any = None,
    end: Any = None,
    actor: str = "retention",
) -> tuple[int, int]:
    """Put archived rows back into their lake partitions; returns (archives, rows).

    ``zone``/``dataset`` select archives; ``start``/``end`` (datetimes) those whose rows overlap.
    Restored points are de-duplicated by reads like any append, so restoring twice is harmless.
    """
    lo, hi = to_us(start) if start is not None else None, to_us(end) if end is not None else None
    count = rows = 0
    for manifest in manifests(ctx):
        if (zone is not None and manifest["zone"] != zone) or (
            dataset is not None and manifest["dataset"] != dataset
        ):
            continue
        if (lo is not None and (manifest["last_us"] or 0) < lo) or (
            hi is not None and (manifest["first_us"] or 0) >= hi
        ):
            continue
        table = read(ctx, manifest)
        ctx.lake.rewrite_partition(manifest["zone"], manifest["dataset"], manifest["key"], [], table)
        count += 1
        rows += table.num_rows
        ctx.catalog.audit(
            actor,
            "restore",
            f"{manifest['zone']}/{manifest['dataset']}/{manifest['key']}",
            {"archive": manifest["name"], "rows": table.num_rows},
        )
    return count, rows


def _write_atomic_parquet(table: pa.Table, fs: pafs.FileSystem, path: str) -> None:
    tmp = path + ".tmp"
    pq.write_table(table, tmp, filesystem=fs, compression="zstd", compression_level=9)
    fs.move(tmp, path)


def _write_json(root: ArchiveRoot, path: str, data: dict[str, Any]) -> None:
    root.fs.create_dir(os.path.dirname(path), recursive=True)
    tmp = path + ".tmp"
    with root.fs.open_output_stream(tmp) as stream:
        stream.write(json.dumps(data, sort_keys=True).encode())
    root.fs.move(tmp, path)


def _read_json(root: ArchiveRoot, path: str) -> dict[str, Any] | None:
    try:
        with root.fs.open_input_stream(path) as stream:
            return dict(json.loads(stream.read()))
    except FileNotFoundError:
        return None
