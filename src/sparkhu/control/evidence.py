"""What the controller decides from: live errors of two models on the same points, and drift events.

:class:`Evidence` is the protocol the controller reads; :class:`StoreEvidence` implements it over
the prediction store (raw forecasts per model label, shadows included) and the lake (the actual
points). A comparison only counts forecasts both models made — the same series, origin and target —
whose target has been observed, so two models are never judged on different points.

Drift here is a plain two-sample test on the served model's one-step errors: the newest
``recent`` errors against the ones before them (mean absolute error up by ``factor`` and by three
standard errors). It stands in until the online layer's drift detectors feed the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.config import dataset_name
from sparkhu.errors import NotFoundError
from sparkhu.online.learner import SHADOW_SUFFIX
from sparkhu.series import SeriesId
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.timeaxis import from_us


@dataclass(frozen=True)
class LiveComparison:
    """Two models' mean absolute errors over the ``points`` forecasts both made and that came true."""

    points: int
    mae_a: float
    mae_b: float

    def numbers(self, a: str = "a", b: str = "b") -> dict[str, float | int]:
        """The figures for the audit log, under the given names."""
        return {"points": self.points, f"{a}_mae": self.mae_a, f"{b}_mae": self.mae_b}


@dataclass(frozen=True)
class DriftEvent:
    """A drift of ``series_id``'s live error found at ``at_us`` (data time) by ``detector``."""

    series_id: str
    at_us: int
    detector: str
    statistic: float
    threshold: float


class Evidence(Protocol):
    """The measurements the controller needs (see the module docstring)."""

    def compare(
        self, series_id: str, label_a: str, label_b: str, last_n: int, *, since_us: int | None = None
    ) -> LiveComparison:
        """Live MAE of the models ``label_a`` and ``label_b`` (``model`` column of the raw forecasts) over
        their last ``last_n`` shared, observed targets with target ≥ ``since_us``."""
        ...

    def drift_events(self, series_id: str, *, since_us: int | None = None) -> Sequence[DriftEvent]:
        """Drift of the served model's live error after ``since_us`` (data time)."""
        ...

    def last_ts(self, series_id: str) -> int | None:
        """The newest observed point of the series (µs), None when there is none."""
        ...


class StoreEvidence:
    """:class:`Evidence` from the prediction store and the lake's ``zone`` (``raw``: the freshest).

    ``lookback``: how far back from a series' newest point drift is looked for; ``recent``: errors
    in the window tested against the ones before it; ``factor``: how much larger its MAE must be.
    """

    def __init__(
        self,
        predictions: PredictionStore,
        lake: Lake,
        *,
        zone: str = "raw",
        lookback: timedelta = timedelta(hours=6),
        recent: int = 20,
        factor: float = 2.0,
    ) -> None:
        self.predictions, self.lake, self.zone = predictions, lake, zone
        self.lookback, self.recent, self.factor = lookback, recent, factor

    def _actuals(self, series_id: str, start_us: int, end_us: int) -> pa.Table:
        sid = SeriesId.parse(series_id)
        try:
            points = self.lake.read(
                self.zone,
                dataset_name(sid.source, sid.measurement),
                series=[series_id],
                start=from_us(start_us),
                end=from_us(end_us + 1),
            )
        except NotFoundError:
            return pa.table({"target_ts": pa.array([], pa.int64()), "actual": pa.array([], pa.float64())})
        return pa.table({"target_ts": points.column("ts").cast(pa.int64()), "actual": points.column("value")})

    def last_ts(self, series_id: str) -> int | None:
        """The newest point of the series in the lake's zone (µs)."""
        sid = SeriesId.parse(series_id)
        try:
            parts = self.lake.partitions(self.zone, dataset_name(sid.source, sid.measurement))
        except NotFoundError:
            return None
        if not parts:
            return None
        newest = max(p.start for p in parts)
        points = self.lake.read(
            self.zone, dataset_name(sid.source, sid.measurement), series=[series_id], start=newest
        )
        return int(points.column("ts").cast(pa.int64())[-1].as_py()) if points.num_rows else None

    def _raw(self, series_id: str, since_us: int | None) -> pa.Table:
        raw = self.predictions.raw(series_id, start=None if since_us is None else from_us(since_us))
        return raw.set_column(1, "origin_ts", raw.column("origin_ts").cast(pa.int64())).set_column(
            2, "target_ts", raw.column("target_ts").cast(pa.int64())
        )

    def compare(
        self, series_id: str, label_a: str, label_b: str, last_n: int, *, since_us: int | None = None
    ) -> LiveComparison:
        """See :meth:`Evidence.compare`."""
        raw = self._raw(series_id, since_us)
        keys = ["origin_ts", "target_ts"]

        def of(label: str, name: str) -> pa.Table:
            rows = raw.filter(pc.equal(raw.column("model"), label))
            return rows.select([*keys, "value"]).rename_columns([*keys, name])

        both = of(label_a, "a").join(of(label_b, "b"), keys=keys, join_type="inner")
        if both.num_rows == 0:
            return LiveComparison(0, float("nan"), float("nan"))
        targets = both.column("target_ts")
        actuals = self._actuals(series_id, pc.min(targets).as_py(), pc.max(targets).as_py())
        seen = both.join(actuals, keys="target_ts", join_type="inner").sort_by(
            [("target_ts", "descending"), ("origin_ts", "descending")]
        )
        seen = seen.slice(0, last_n)
        if seen.num_rows == 0:
            return LiveComparison(0, float("nan"), float("nan"))
        actual = seen.column("actual").to_numpy()
        mae_a = float(np.mean(np.abs(seen.column("a").to_numpy() - actual)))
        mae_b = float(np.mean(np.abs(seen.column("b").to_numpy() - actual)))
        return LiveComparison(seen.num_rows, mae_a, mae_b)

    def drift_events(self, series_id: str, *, since_us: int | None = None) -> list[DriftEvent]:
        """See :meth:`Evidence.drift_events` (the module docstring says how)."""
        newest = self.last_ts(series_id)
        if newest is None:
            return []
        start = newest - int(self.lookback.total_seconds() * 1_000_000)
        raw = self._raw(series_id, max(start, since_us or start))
        served = pc.and_(
            pc.equal(raw.column("step"), 1), pc.invert(pc.ends_with(raw.column("model"), SHADOW_SUFFIX))
        )
        one = raw.filter(served).select(["target_ts", "value"])
        if one.num_rows < 2 * self.recent:
            return []
        targets = one.column("target_ts")
        seen = one.join(
            self._actuals(series_id, pc.min(targets).as_py(), pc.max(targets).as_py()),
            keys="target_ts",
            join_type="inner",
        ).sort_by("target_ts")
        errors = np.abs(seen.column("value").to_numpy() - seen.column("actual").to_numpy())
        if errors.size < 2 * self.recent:
            return []
        before, recent = errors[: -self.recent], errors[-self.recent :]
        reference = float(before.mean())
        bound = max(self.factor * reference, reference + 3.0 * float(before.std()) / np.sqrt(self.recent))
        statistic = float(recent.mean())
        if not statistic > bound:
            return []
        at = int(seen.column("target_ts")[seen.num_rows - self.recent].as_py())
        return [DriftEvent(series_id, at, "live-mae-shift", statistic, bound)]
