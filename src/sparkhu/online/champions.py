"""Serving champions online: hand each series' registry champion to the online predictor as it changes.

:class:`ChampionServer` watches the registry's ``champion`` aliases (one listing call per
poll) and, for every series of the predictor whose champion version changed, loads that
version and queues it for the predictor (:meth:`OnlinePredictor.queue_swap
<sparkhu.online.learner.OnlinePredictor.queue_swap>`) with its label (``"ses@v3"``), so the
forecasts it stores say which version made them. The server only talks to the registry and
the queue: the predictor's own loop installs the model between batches, first bringing it
up to date with the window's points after the slot it was trained up to, then keeping it
current as points arrive. A model trained at another period than the predictor's step is not
served (logged once), nor one whose recorded feature view (``sparkhu train --feature-view``) does
not describe what the predictor feeds it: the view must hold the series, read the predictor's
dataset, step at its period and not be normalised by the pipeline (live points are raw values);
a view of the ``clean`` zone is served the live raw points (logged). Registry outages are logged
and retried at the next poll; the predictor keeps its current models meanwhile. A version the
predictor already serves, restored from its checkpoint after a restart, is not loaded again: that
would throw away every update the model had since it was installed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from sparkhu.errors import ForecastError, SparkhuError
from sparkhu.forecast.registry import ModelRegistry, Served, registered_name
from sparkhu.metadata.features import get_view, serving_problems
from sparkhu.online.learner import OnlinePredictor
from sparkhu.storage.catalog import Catalog

log = logging.getLogger(__name__)


class ChampionServer:
    """Keep an :class:`OnlinePredictor` serving the registry's champions; see the module docstring.

    ``series``: the series to serve (default: every series the predictor knows, checked at
    each poll). ``poll_s``: seconds between registry checks. ``catalog`` (default: the registry's):
    where a version's feature view is read. :attr:`serving` and
    :attr:`swaps` count champions when they are queued: the predictor installs them at the
    start of its next round (its ``stats().swaps`` counts the installed ones).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        predictor: OnlinePredictor,
        *,
        series: Sequence[str] | None = None,
        poll_s: float = 30.0,
        catalog: Catalog | None = None,
    ) -> None:
        if not poll_s > 0:
            raise ForecastError(f"champion server: poll_s must be > 0 seconds, got {poll_s!r}")
        self.registry, self.predictor, self.poll_s = registry, predictor, poll_s
        self.catalog = catalog if catalog is not None else registry.catalog
        self.series = None if series is None else list(series)
        self.serving: dict[str, int] = {}
        """series id → champion version handed (queued) to the predictor."""
        self.swaps = 0
        """Champions queued for the predictor so far."""
        self._skipped: set[tuple[str, int]] = set()

    def sync(self) -> list[str]:
        """Queue every champion that changed since the last call; returns the series queued."""
        wanted = self.series if self.series is not None else sorted(self.predictor.known_series())
        if not wanted:
            return []
        names = {registered_name(sid): sid for sid in wanted}
        champions = self.registry.champions(list(names))
        queued = []
        for name, version in sorted(champions.items()):
            sid = names[name]
            if self.serving.get(sid) == version or (sid, version) in self._skipped:
                continue
            if self.predictor.labels.get(sid, "").endswith(f"@v{version}"):
                self.serving[sid] = version  # restored from the predictor's checkpoint, kept up to date
                continue
            try:
                served = self.registry.served(name, version=version)
                self._check_period(served)
                self._check_feature_view(sid, name, version)
            except SparkhuError as exc:
                log.warning("champion server: %s v%d not served: %s", name, version, exc)
                self._skipped.add((sid, version))
                continue
            self.predictor.queue_swap(
                sid, served.forecaster, label=served.label, trained_until_us=served.last_ts_us
            )
            log.info("champion server: %s queued for %s", served.label, sid)
            self.serving[sid] = version
            queued.append(sid)
        self.swaps += len(queued)
        return queued

    def _check_period(self, served: Served) -> None:
        step = self.predictor.step_s
        if served.period_s is not None and not np.isclose(served.period_s, step):
            raise ForecastError(
                f"trained at a period of {served.period_s:g} s, the online predictor steps {step:g} s"
            )

    def _check_feature_view(self, series_id: str, name: str, version: int) -> None:
        """ForecastError naming the feature view a version was trained on when the predictor does not
        feed the series that view's inputs (see the module docstring)."""
        catalog = self.catalog
        record = catalog.model(name, version) if catalog is not None else None
        if catalog is None or record is None or not record["feature_view"]:
            return
        view = get_view(catalog, record["feature_view"], record["feature_view_version"])
        online = self.predictor
        problems = serving_problems(
            view, series_id, zone=online.zone, dataset=online.dataset, period_s=online.step_s
        )
        if problems:
            raise ForecastError(
                f"trained on feature view {view.name!r} v{view.version}, which {'; '.join(problems)}"
            )
        if view.zone != online.zone:
            log.info(
                "champion server: %s v%d, trained on feature view %r v%s (%s zone), is fed live %s points",
                name, version, view.name, view.version, view.zone, online.zone,
            )  # fmt: skip

    def run(self, stop: threading.Event) -> None:
        """Sync every ``poll_s`` until ``stop`` is set (registry errors are logged, then retried)."""
        while not stop.is_set():
            try:
                self.sync()
            except SparkhuError as exc:
                log.error("champion server: %s; retrying in %.0f s", exc, self.poll_s)
            stop.wait(self.poll_s)
