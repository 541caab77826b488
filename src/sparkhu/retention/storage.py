"""Storage by target: what each target holds now (the dashboard's and GraphQL's overview)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sparkhu.retention import archive
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import TRASH

_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


def usage(ctx: RetentionContext) -> list[dict[str, Any]]:
    """One entry per lake dataset, the archive, the trash, each prediction table, run history and each
    bus topic: ``target``, ``name``, ``bytes`` (files) or ``rows`` (database rows), ``partitions``."""
    out: list[dict[str, Any]] = []
    lake = ctx.lake
    for zone, dataset in lake.datasets():
        listing = lake.partition_files(zone, dataset)
        size = sum(s for _, files in listing for _, s in files)
        out.append({"target": zone, "name": dataset, "bytes": size, "rows": None, "partitions": len(listing)})
    manifests = archive.manifests(ctx)
    out.append(
        {
            "target": "archive",
            "name": ctx.archive,
            "bytes": sum(m["bytes"] for m in manifests),
            "rows": sum(m["rows"] for m in manifests),
            "partitions": len(manifests),
        }
    )
    fs = lake.filesystem
    import pyarrow.fs as pafs

    trash = [
        i
        for i in fs.get_file_info(
            pafs.FileSelector(f"{lake.base}/{TRASH}", allow_not_found=True, recursive=True)
        )
        if i.type == pafs.FileType.File
    ]
    out.append(
        {
            "target": "trash",
            "name": TRASH,
            "bytes": sum(i.size or 0 for i in trash),
            "rows": None,
            "partitions": len(trash),
        }
    )
    if ctx.predictions is not None:
        for table in ("raw", "blended"):
            rows = ctx.predictions.delete_before(_FOREVER, tables=[table], dry_run=True)
            out.append(
                {
                    "target": f"predictions.{table}",
                    "name": table,
                    "bytes": None,
                    "rows": rows,
                    "partitions": None,
                }
            )
    out.append(
        {
            "target": "runs",
            "name": "*",
            "bytes": None,
            "partitions": None,
            "rows": ctx.catalog.delete_runs(_FOREVER, dry_run=True),
        }
    )
    if ctx.reports is not None and os.path.isdir(ctx.reports):
        for dataset in sorted(os.listdir(ctx.reports)):
            folder = os.path.join(ctx.reports, dataset)
            if os.path.isdir(folder):
                files = [os.path.join(w, n) for w, _, names in os.walk(folder) for n in names]
                days = sum(1 for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
                size = sum(os.path.getsize(f) for f in files)
                out.append(
                    {"target": "reports", "name": dataset, "bytes": size, "rows": None, "partitions": days}
                )
    bus = ctx.get_bus()
    if bus is not None and hasattr(bus, "topics"):
        for topic, partitions in sorted(bus.topics().items()):
            # the SQLite bus counts its rows; a Kafka broker's are its own (retention.ms governs them)
            rows = (
                bus.delete_before(topic, 253_402_300_800_000, dry_run=True)
                if hasattr(bus, "delete_before")
                else None
            )
            out.append(
                {"target": "bus", "name": topic, "bytes": None, "rows": rows, "partitions": partitions}
            )
    return out
