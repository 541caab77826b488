"""The context: every backend a service needs, built once from :class:`~sparkhu.config.Settings`.

Services receive a :class:`Context` (or just the parts they use) instead of reading settings
or opening connections themselves, so tests can build one over a temporary home and the
distributed backends slot in by URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparkhu.config import Settings
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream import Bus, open_bus


@dataclass
class Context:
    """The opened backends of one sparkhu home. Close it when done (or use ``with``)."""

    settings: Settings
    lake: Lake
    catalog: Catalog
    predictions: PredictionStore
    bus: Bus

    @classmethod
    def open(cls, settings: Settings) -> Context:
        """Open (and create, for the embedded defaults) every backend named in ``settings``."""
        Path(settings.home).mkdir(parents=True, exist_ok=True)
        lake = Lake(settings.storage.lake, layout=settings.storage.layout)
        catalog = Catalog(settings.storage.catalog)
        try:
            predictions = PredictionStore(catalog.engine, alpha=settings.forecast.alpha)
            bus = open_bus(
                settings.bus.uri,
                default_partitions=settings.bus.partitions,
                client=settings.bus.client,
                consumer=settings.bus.consumer,
            )
        except BaseException:
            catalog.close()
            raise
        return cls(settings, lake, catalog, predictions, bus)

    def topic(self, source: str, measurement: str) -> str:
        """The topic of one source's measurement: ``<prefix><source>.<measurement>``."""
        return f"{self.settings.bus.topic_prefix}{source}.{measurement}"

    def close(self) -> None:
        """Release the bus and the catalog connections."""
        self.bus.close()
        self.catalog.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
