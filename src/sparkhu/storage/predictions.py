"""The prediction store: raw forecasts and their blended value per target time.

Raw forecasts keep everything a model said: (series_id, origin_ts, target_ts, step, value,
lower, upper, model). Blended forecasts keep one value per (series_id, target_ts), updated
by simple exponential smoothing each time a new forecast for that target arrives::

    S = α·ŷ + (1−α)·S_prev   if a blended value exists, else S = ŷ

(α = 0.6 by default, per series overridable). Stored in the catalog's database (SQLite or
PostgreSQL) through SQLAlchemy Core; writing the same forecast (same series, origin,
target, model) twice is a no-op, so re-runs do not blend twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

FORECAST_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string(), nullable=False),
        pa.field("origin_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("target_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("lower", pa.float64()),
        pa.field("upper", pa.float64()),
        pa.field("model", pa.string(), nullable=False),
    ]
)

BLENDED_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string(), nullable=False),
        pa.field("target_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("lower", pa.float64()),
        pa.field("upper", pa.float64()),
        pa.field("updates", pa.int32(), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class PredictionStore:
    """Raw and blended forecasts in the catalog database."""

    def __init__(self, engine: object, *, alpha: float = 0.6) -> None:
        """``engine``: the catalog's SQLAlchemy engine (tables are created by its migrations)."""
        ...

    def write(self, forecasts: pa.Table, *, alpha: float | None = None) -> int:
        """Store forecasts (FORECAST_SCHEMA) and blend them into the blended table.

        One transaction; returns the number of new raw rows. Vectorised: blending is computed
        for the whole batch at once (several forecasts for one target inside the batch are
        applied in origin order).
        """
        ...

    def raw(
        self,
        series_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100_000,
    ) -> pa.Table:
        """Raw forecasts of a series whose target_ts is in [start, end), by target then origin."""
        ...

    def blended(
        self,
        series_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100_000,
    ) -> pa.Table:
        """Blended forecasts (BLENDED_SCHEMA) of a series in [start, end), by target_ts."""
        ...

    def latest_origin(self, series_id: str) -> datetime | None:
        """The newest origin_ts stored for a series."""
        ...

    def series(self) -> list[str]:
        """Series that have forecasts."""
        ...

    def set_alpha(self, series_id: str, alpha: float) -> None:
        """Override α for one series."""
        ...

    def delete_before(self, target_before: datetime, series: Sequence[str] | None = None) -> int:
        """Delete raw and blended rows with target_ts < target_before (retention)."""
        ...
