"""What the gateway reads from and writes to, in one object passed to every transport.

Its own module, below the app, the schema and the resolvers, so all of them can name it
without importing each other.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     catalog = Catalog(f"sqlite:///{tmp}/catalog.db")
...     services = GatewayServices(Lake(f"file://{tmp}/lake"), catalog, PredictionStore(catalog.engine))
...     catalog.close()
>>> services.actuals, services.max_query_depth == DEFAULT_MAX_DEPTH
(('raw', '{source}_{measurement}'), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from sparkhu.app.pipelines import rerun_task_day
from sparkhu.app.retention import retention_context
from sparkhu.app.runtime import Runtime
from sparkhu.config import GatewaySettings, TrainingPolicy
from sparkhu.gateway.live import LiveFeeds
from sparkhu.gateway.metrics import Metrics
from sparkhu.retention.context import RetentionContext
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore

# How deeply GraphQL queries may nest (``Series.runs`` ↔ ``Run.series`` could recurse).
DEFAULT_MAX_DEPTH = 8


@dataclass
class GatewayServices:
    """Everything the gateway reads from and writes to.

    ``actuals`` is the (zone, dataset) of the lake holding actual points; the dataset may
    name ``{source}``, ``{measurement}`` or ``{field}`` of the series id, e.g.
    ``("clean", "{source}_{measurement}")``. ``metrics`` is the registry ``/metrics``
    renders; other components may set gauges on it. ``live`` holds the subscriptions' topics
    (one poller per topic, see :mod:`sparkhu.gateway.live`).
    """

    lake: Lake
    catalog: Catalog
    predictions: PredictionStore
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    actuals: tuple[str, str] = ("raw", "{source}_{measurement}")
    timezone: str = "UTC"
    metrics: Metrics = field(default_factory=Metrics)
    max_query_depth: int = DEFAULT_MAX_DEPTH
    retention: RetentionContext | None = None
    """Retention's context (policies, plans, the audit); None: the retention API answers it is off."""
    live: LiveFeeds = field(default_factory=LiveFeeds)
    topic_prefix: str = "sparkhu."
    """``[bus] topic_prefix``: the topic names a lineage shows."""
    reports: Path | None = None
    """Folder of the pipeline's reports (``<home>/reports``); None: no report links."""
    rerun: Callable[[str, str, date], str] | None = None
    """``rerun(dataset, task, day) -> status``: run one task-day again; None: re-runs are off."""
    registry: Callable[[], Any] | None = None
    """Opens the model registry on first use (its aliases); None: model versions from the catalog."""
    training_policies: Sequence[TrainingPolicy] = ()
    """The training policies of ``sparkhu.toml`` (those set at run time are in the catalog)."""

    @classmethod
    def of(cls, runtime: Runtime, **overrides: Any) -> GatewayServices:
        """The services over a runtime's lake, catalog and prediction store, with its ``[gateway]`` settings,
        display timezone, and actuals in each series' own raw dataset (``raw/<source>_<measurement>``)."""
        settings = runtime.settings
        values: dict[str, Any] = {
            "settings": settings.gateway,
            "timezone": settings.timezone,
            "actuals": ("raw", "{source}_{measurement}"),
            "retention": retention_context(runtime, registry=False),
            "topic_prefix": settings.bus.topic_prefix,
            "reports": Path(settings.home) / "reports",
            "rerun": partial(rerun_task_day, runtime),
            "registry": lambda: runtime.registry,
            "training_policies": tuple(settings.policies),
            **overrides,
        }
        return cls(lake=runtime.lake, catalog=runtime.catalog, predictions=runtime.predictions, **values)
