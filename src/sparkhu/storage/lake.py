"""The lake: partitioned Parquet datasets of points, read through DuckDB.

Layout under the lake root (a local folder or any pyarrow/fsspec URI)::

    <zone>/<dataset>/date=YYYY-MM-DD/part-<uuid>.parquet                 (layout="date")
    <zone>/<dataset>/year=YYYY/month=MM/day=dd/hour=HH/part-<uuid>.parquet (layout="hourly",
                                                                          Kafka Connect HDFS3)

Zones: ``raw`` (as ingested), ``clean``, ``features``, ``analysis``, ``quarantine`` (bad
records with their reason). Partitions follow the point's UTC timestamp.

Writes are atomic (a temporary file renamed into place), so a reader never sees half a file
and a crash leaves only ignorable ``.tmp`` files. Appending the same points twice is
harmless: reads de-duplicate on (series_id, ts) keeping the latest write, and
:meth:`Lake.compact` rewrites a partition as one file with the duplicates gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa

ZONES = ("raw", "validated", "clean", "features", "analysis", "quarantine")

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),  # file path, topic/partition/offset, connector name
        pa.field("location", pa.string()),  # "line 12", "row 3 col WHE", "offset 17"
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),  # the offending record as text
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class PartitionInfo:
    """One partition of a dataset as it is on storage."""

    zone: str
    dataset: str
    key: str  # "date=2024-01-01" or "year=2024/month=01/day=01/hour=05"
    files: int
    rows: int
    bytes: int


class Lake:
    """Partitioned Parquet datasets under one root URI."""

    def __init__(self, root: str, *, layout: str = "date") -> None: ...

    def write(self, zone: str, dataset: str, table: pa.Table) -> list[str]:
        """Append points (POINT_SCHEMA) to ``zone/dataset``, one new file per touched partition.

        Returns the written paths. Atomic per file; vectorised (no per-point Python).
        """
        ...

    def replace(self, zone: str, dataset: str, table: pa.Table, days: Sequence[date]) -> list[str]:
        """Replace the partitions of ``days`` with ``table`` (idempotent re-runs of a day)."""
        ...

    def write_quarantine(self, dataset: str, records: pa.Table) -> str | None:
        """Append bad records (QUARANTINE_SCHEMA) to ``quarantine/<dataset>``; None if empty."""
        ...

    def read(
        self,
        zone: str,
        dataset: str,
        *,
        series: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        dedup: bool = True,
    ) -> pa.Table:
        """Points of ``zone/dataset`` ordered by (series_id, ts), with start ≤ ts < end.

        Partition pruning on the time range; series filter pushed down; duplicates on
        (series_id, ts) resolved to the latest file's value when ``dedup``. Empty table of
        POINT_SCHEMA when nothing matches.
        """
        ...

    def read_quarantine(self, dataset: str) -> pa.Table:
        """All quarantined records of ``dataset``."""
        ...

    def series(self, zone: str, dataset: str) -> list[str]:
        """Distinct series ids present in ``zone/dataset``."""
        ...

    def datasets(self, zone: str | None = None) -> list[tuple[str, str]]:
        """(zone, dataset) pairs that exist."""
        ...

    def partitions(self, zone: str, dataset: str) -> list[PartitionInfo]:
        """The partitions of a dataset, oldest first."""
        ...

    def compact(self, zone: str, dataset: str, *, keys: Sequence[str] | None = None) -> list[PartitionInfo]:
        """Rewrite each partition (or only ``keys``) as one sorted, de-duplicated file. Atomic."""
        ...

    def drop_partitions(self, zone: str, dataset: str, keys: Sequence[str]) -> int:
        """Delete whole partitions; returns how many were removed."""
        ...
