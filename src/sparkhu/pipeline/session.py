"""What the stages of one run share: the engine, the outputs, the series metadata, retries and hooks.

:class:`RunSession` is built by :meth:`PipelineRunner.run <sparkhu.pipeline.runner.PipelineRunner.run>`
and handed to each stage's driver (:class:`~sparkhu.pipeline.chain_driver.ChainDriver`,
:class:`~sparkhu.pipeline.all_series_driver.AllSeriesDriver`). :class:`SeriesMetas` holds the
catalog's series metadata as the run sees it: loaded once, updated as tasks record theirs
(their later tasks see it at once) and stored in the catalog, on a writer thread when asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparkhu.engine.base import Engine
from sparkhu.errors import SparkhuError
from sparkhu.pipeline.base import SeriesMeta
from sparkhu.pipeline.datasets import Datasets
from sparkhu.pipeline.hooks import HookRelay
from sparkhu.pipeline.outputs import RunOutputs
from sparkhu.pipeline.runs import jsonable
from sparkhu.retrying import RetryPolicy
from sparkhu.storage.catalog import Catalog

log = logging.getLogger(__name__)


class SeriesMetas:
    """The metadata of the series ``catalog`` knows, as of the start of a run plus what its tasks recorded."""

    def __init__(self, catalog: Catalog, outputs: RunOutputs) -> None:
        self.catalog = catalog
        self.outputs = outputs
        self._lock = threading.Lock()  # scope-all tasks of one level run on threads
        self._meta = {
            i.series_id: SeriesMeta(
                i.series_id,
                i.unit,
                i.period_s,
                i.regular,
                i.value_min,
                i.value_max,
                dict(i.tags),
                dict(i.extra),
            )
            for i in catalog.list_series(limit=10_000_000)
        }

    def of(self, series: Sequence[str]) -> dict[str, SeriesMeta]:
        """The metadata of those of ``series`` the catalog knows."""
        with self._lock:
            return {sid: self._meta[sid] for sid in series if sid in self._meta}

    def update(self, updates: Mapping[str, Mapping[str, Any]], *, later: bool = False) -> None:
        """Apply tasks' metadata (series id → fields) to the series the catalog knows and record it
        there (``later``: on a writer thread; this run's tasks see it at once either way)."""
        with self._lock:
            known = {sid: fields for sid, fields in updates.items() if sid in self._meta}
            for sid, fields in known.items():
                self._meta[sid] = self._meta[sid].updated(fields)
        unknown = sorted(set(updates) - set(known))
        if unknown:
            log.warning(
                "metadata of %d series not in the catalog ignored (first %s)", len(unknown), unknown[0]
            )
        if not known:
            return
        metas = {sid: jsonable(fields) for sid, fields in known.items()}
        if later:
            self.outputs.submit(lambda: self._store(metas))
        else:
            self.catalog.update_series_metas(metas)

    def _store(self, metas: dict[str, Any]) -> None:
        try:
            self.catalog.update_series_metas(metas)
        except SparkhuError as exc:
            log.error("cannot record the metadata of %d series: %s", len(metas), exc)


@dataclass(frozen=True)
class RunSession:
    """The collaborators of one run's stages."""

    engine: Engine
    datasets: Datasets
    outputs: RunOutputs
    metas: SeriesMetas
    retry: RetryPolicy
    hooks: HookRelay
