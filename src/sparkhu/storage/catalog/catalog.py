"""The :class:`Catalog` service over the catalog database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa


@dataclass
class SeriesInfo:
    """What the catalog knows about one series."""

    series_id: str
    source: str
    measurement: str
    field: str
    unit: str | None = None
    period_s: float | None = None  # sampling period in seconds, None = not decided
    regular: bool | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    count: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    value_min: float | None = None  # valid range, used by validation
    value_max: float | None = None


@dataclass
class RunRecord:
    """One run of a task (or connector, training...) for one interval and, optionally, one series."""

    run_id: str
    kind: str  # "pipeline", "connector", "train", "retention", ...
    name: str  # task or connector name
    status: str  # "running", "success", "failed", "skipped"
    started_at: datetime
    finished_at: datetime | None = None
    series_id: str | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Catalog:
    """The feature metadata store. Thread-safe; safe across processes on SQLite (WAL) and PostgreSQL."""

    def __init__(self, uri: str, *, migrate: bool = True) -> None:
        """Connect to ``uri`` and bring the schema to the latest migration when ``migrate``.

        Raises :class:`~sparkhu.errors.BackendUnavailable` (with the URI) when the database
        cannot be reached.
        """
        ...

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (shared with the prediction store)."""
        ...

    def close(self) -> None: ...

    # sources and series
    def upsert_source(self, name: str, kind: str, config: Mapping[str, Any] | None = None) -> None: ...
    def upsert_series(self, info: SeriesInfo) -> None:
        """Insert or update a series' descriptive metadata (unit, period, tags, range)."""
    def update_series_stats(self, points: pa.Table) -> None:
        """Widen first/last timestamps and add to counts from a batch of points (one query per batch)."""
    def series(self, series_id: str) -> SeriesInfo:
        """Raises :class:`~sparkhu.errors.NotFoundError` for an unknown id."""
    def list_series(self, *, prefix: str = "", limit: int = 10_000) -> list[SeriesInfo]: ...

    # datasets and partitions
    def register_partitions(self, zone: str, dataset: str, partitions: Sequence[Any]) -> None:
        """Record (upsert) PartitionInfo rows for a dataset."""
    def list_partitions(self, zone: str, dataset: str) -> list[dict[str, Any]]: ...

    # watermarks (connectors, consumers)
    def get_watermark(self, owner: str, key: str = "") -> dict[str, Any] | None:
        """The JSON position ``owner`` (a connector name) saved for ``key`` (e.g. a file path)."""
    def set_watermark(self, owner: str, key: str, position: Mapping[str, Any]) -> None:
        """Save a position; committed before returning."""

    # runs
    def start_run(self, record: RunRecord) -> None: ...
    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        rows_in: int | None = None,
        rows_out: int | None = None,
        error: str | None = None,
    ) -> None: ...
    def runs(self, *, kind: str | None = None, name: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first."""

    # models
    def register_model(
        self, name: str, version: str, series_id: str | None, uri: str, metrics: Mapping[str, float]
    ) -> None: ...
    def models(self, *, series_id: str | None = None) -> list[dict[str, Any]]: ...

    # policies (retention, training)
    def set_policy(self, kind: str, name: str, body: Mapping[str, Any]) -> None: ...
    def policies(self, kind: str | None = None) -> list[dict[str, Any]]: ...

    # audit log (append-only)
    def audit(self, actor: str, action: str, target: str, detail: Mapping[str, Any] | None = None) -> None: ...
    def audit_log(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
