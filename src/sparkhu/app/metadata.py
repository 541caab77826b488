"""The metadata room bound to a runtime: lineage with the home's topic names, OpenLineage events to
``[metadata] openlineage``, feature views for training.

>>> import tempfile
>>> from sparkhu.config import Settings
>>> from sparkhu.storage.catalog import SeriesInfo
>>> with tempfile.TemporaryDirectory() as home:
...     with Runtime(Settings.load(toml_path=None, env={}, overrides={"home": home})) as runtime:
...         runtime.catalog.upsert_series(SeriesInfo.of("home/power/P"))
...         graph = series_lineage(runtime, "home/power/P")
>>> graph.of_kind("dataset")[0].label
'raw/home_power'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sparkhu.app.runtime import Runtime
from sparkhu.errors import SparkhuError
from sparkhu.metadata.lineage import LineageGraph, lineage
from sparkhu.metadata.openlineage import LineageEmitter, lineage_events
from sparkhu.storage.catalog.engine import mask

log = logging.getLogger(__name__)


def series_lineage(runtime: Runtime, series_id: str) -> LineageGraph:
    """The lineage of ``series_id`` in the runtime's catalog, with its bus's topic names."""
    return lineage(runtime.catalog, series_id, topic_prefix=runtime.settings.bus.topic_prefix)


def openlineage_events(runtime: Runtime, graphs: Sequence[LineageGraph]) -> list[dict[str, Any]]:
    """The OpenLineage events of ``graphs`` (one per run, however many graphs share it), with the
    home's lake root, bus and registry as dataset namespaces."""
    settings = runtime.settings
    seen: set[tuple[str, str]] = set()
    out = []
    for graph in graphs:
        for event in lineage_events(
            graph,
            namespace=settings.metadata.namespace,
            lake=settings.storage.lake,
            bus=mask(settings.bus.uri),
            registry=mask(settings.mlflow.tracking_uri),
        ):
            key = (event["job"]["name"], event["run"]["runId"])
            if key not in seen:
                seen.add(key)
                out.append(event)
    return out


def emitter(runtime: Runtime) -> LineageEmitter:
    """The emitter of ``[metadata] openlineage`` (sends nothing when it is empty)."""
    meta = runtime.settings.metadata
    return LineageEmitter(meta.openlineage, timeout_s=meta.openlineage_timeout_s)


def emit_lineage(runtime: Runtime, series_ids: Sequence[str]) -> int:
    """Send the OpenLineage events of the lineage of ``series_ids`` to ``[metadata] openlineage``;
    how many were sent (0 when it is not set)."""
    target = emitter(runtime)
    if not target.enabled or not series_ids:
        return 0
    graphs = [series_lineage(runtime, sid) for sid in series_ids]
    return target.emit(openlineage_events(runtime, graphs))


def emit_after(runtime: Runtime, series_ids: Sequence[str], what: str) -> None:
    """:func:`emit_lineage` after a job (``what``): a failure to send is logged, the job stands."""
    try:
        sent = emit_lineage(runtime, series_ids)
    except SparkhuError as exc:
        log.error("cannot send the lineage events of %s: %s", what, exc)
        return
    if sent:
        log.info("sent %d lineage event(s) of %s", sent, what)
