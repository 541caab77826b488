"""Serving champions online: load each series' champion into the online predictor, hot-swap new ones.

:class:`ChampionServer` watches the registry's ``champion`` aliases (one listing call per
poll) and, for every series of the predictor whose champion version changed, loads that
version and hands it to :meth:`OnlinePredictor.set_model` together with its label
(``"ses@v3"``), so the forecasts it stores say which version made them. A champion trained
up to some slot is first brought up to date with the window's points after that slot
(``update``), then kept current by the predictor as points arrive. A model trained at another
period than the predictor's step is not served (logged once). Registry outages are logged
and retried at the next poll; the predictor keeps its current models meanwhile.

:func:`predict_series` is the one-off: load a champion, forecast from the last point of the
lake, store and return the forecasts (``sparkhu predict``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa

from sparkhu.errors import ForecastError, NotFoundError, SparkhuError
from sparkhu.forecast.registry import ModelRegistry, Served, registered_name
from sparkhu.forecast.train import TrainConfig, forecast_table, regular
from sparkhu.online.learner import OnlinePredictor
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore

log = logging.getLogger(__name__)


class ChampionServer:
    """Keep an :class:`OnlinePredictor` serving the registry's champions; see the module docstring.

    ``series``: the series to serve (default: every series the predictor has seen, plus
    those it will see, checked at each poll). ``poll_s``: seconds between registry checks.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        predictor: OnlinePredictor,
        *,
        series: Sequence[str] | None = None,
        poll_s: float = 30.0,
    ) -> None:
        if not poll_s > 0:
            raise ForecastError(f"champion server: poll_s must be > 0 seconds, got {poll_s!r}")
        self.registry, self.predictor, self.poll_s = registry, predictor, poll_s
        self.series = None if series is None else list(series)
        self.serving: dict[str, int] = {}
        """series id → champion version being served."""
        self.swaps = 0
        self._skipped: set[tuple[str, int]] = set()

    def sync(self) -> list[str]:
        """Load every champion that changed since the last call; returns the series swapped."""
        wanted = self.series if self.series is not None else sorted(self._known_series())
        if not wanted:
            return []
        names = {registered_name(sid): sid for sid in wanted}
        champions = self.registry.champions(list(names))
        swapped = []
        for name, version in sorted(champions.items()):
            sid = names[name]
            if self.serving.get(sid) == version or (sid, version) in self._skipped:
                continue
            try:
                served = self.registry.served(name, version=version)
                self._install(sid, served)
            except SparkhuError as exc:
                log.warning("champion server: %s v%d not served: %s", name, version, exc)
                self._skipped.add((sid, version))
                continue
            self.serving[sid] = version
            swapped.append(sid)
        self.swaps += len(swapped)
        return swapped

    def _known_series(self) -> set[str]:
        return set(self.predictor.models) | set(self.predictor.windows)

    def _install(self, series_id: str, served: Served) -> None:
        step = self.predictor.step_s
        if served.period_s is not None and not np.isclose(served.period_s, step):
            raise ForecastError(
                f"trained at a period of {served.period_s:g} s, the online predictor steps {step:g} s"
            )
        model = served.forecaster
        if series_id in self.predictor.windows and served.last_ts_us is not None:
            window = self.predictor.windows[series_id]
            newer = np.asarray(window.ts) > served.last_ts_us
            if newer.any():
                model.update(np.asarray(window.values)[newer])
        self.predictor.set_model(series_id, model, label=served.label)
        log.info("champion server: %s now served by %s", series_id, served.label)

    def run(self, stop: threading.Event) -> None:
        """Sync every ``poll_s`` until ``stop`` is set (registry errors are logged, then retried)."""
        while not stop.is_set():
            try:
                self.sync()
            except SparkhuError as exc:
                log.error("champion server: %s; retrying in %.0f s", exc, self.poll_s)
            stop.wait(self.poll_s)


def predict_series(
    lake: Lake,
    predictions: PredictionStore,
    registry: ModelRegistry,
    series_id: str,
    *,
    dataset: str,
    zone: str | None = None,
    horizon: int = 20,
    alias: str = "champion",
    now: datetime | None = None,
) -> pa.Table:
    """Forecast ``series_id`` with its champion from the last point in the lake; store and return them.

    The champion is brought up to date with the points after its training (``update``).
    Raises :class:`NotFoundError` when the series has no champion or no points.
    """
    served = registry.served(series_id, alias)
    zone = zone or ("clean" if ("clean", dataset) in lake.datasets("clean") else "raw")
    history = lake.read(zone, dataset, series=[series_id], end=now)
    if history.num_rows == 0:
        raise NotFoundError(f"series {series_id!r} has no points in {zone}/{dataset}")
    period = served.period_s or 60.0
    y, last_us = regular(history.select(["ts", "value"]).to_pandas(), period)
    model = served.forecaster
    if served.last_ts_us is not None and last_us > served.last_ts_us:
        first_us = last_us - (y.size - 1) * round(period * 1_000_000)
        skip = (served.last_ts_us - first_us) // round(period * 1_000_000) + 1
        model.update(y[max(0, int(skip)) :])
    config = TrainConfig(horizon=horizon, period_s=period, coverage=getattr(model, "coverage", 0.95))
    table = forecast_table(series_id, model, last_us, config, served.label)
    predictions.write(table)
    return table
