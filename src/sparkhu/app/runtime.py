"""The runtime: the backends of one sparkhu home, each opened on first use, once.

Every command and service of the application layer works from one :class:`Runtime` built from
:class:`~sparkhu.config.Settings`: ``sparkhu train`` opens the lake, the catalog, the prediction
store and the registry, never the bus; ``sparkhu serve`` never opens the registry. Closing the
runtime releases exactly what was opened.

>>> import tempfile
>>> from sparkhu.config import Settings
>>> with tempfile.TemporaryDirectory() as home:
...     with Runtime(Settings.load(toml_path=None, env={}, overrides={"home": home})) as runtime:
...         _ = runtime.catalog
...         runtime.opened()
['catalog']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sparkhu.config import Settings
from sparkhu.errors import ConfigError, SparkhuError

if TYPE_CHECKING:
    from sparkhu.engine import Engine
    from sparkhu.forecast.registry import ModelRegistry
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake
    from sparkhu.storage.predictions import PredictionStore
    from sparkhu.storage.writes import PartitionWrite
    from sparkhu.stream import Bus

T = TypeVar("T")
log = logging.getLogger(__name__)


class Runtime:
    """The opened backends of one home; see the module docstring. Thread-safe; close it (or use ``with``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opened: dict[str, Any] = {}
        self._closers: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.RLock()
        Path(settings.home).mkdir(parents=True, exist_ok=True)

    def _once(self, name: str, open_: Callable[[], T], close: Callable[[T], None] | None = None) -> T:
        with self._lock:
            if name not in self._opened:
                value = open_()
                self._opened[name] = value
                if close is not None:
                    self._closers.append((name, lambda: close(value)))
            return self._opened[name]

    @property
    def lake(self) -> Lake:
        """The lake (``[storage] lake``, ``layout``); what it writes is recorded in the catalog."""
        from sparkhu.storage.lake import Lake

        storage = self.settings.storage
        return self._once(
            "lake", lambda: Lake(storage.lake, layout=storage.layout, on_write=self._record_writes)
        )

    def _record_writes(self, writes: Sequence[PartitionWrite]) -> None:
        """The lake's listener: the partitions of one write, in one catalog call. A catalog that
        fails is logged, not raised: the data is in the lake, only its record is late."""
        try:
            self.catalog.record_writes(writes)
        except SparkhuError as exc:
            log.error("cannot record the lake partitions just written: %s", exc)

    @property
    def catalog(self) -> Catalog:
        """The catalog (``[storage] catalog``), migrated to the current schema."""
        from sparkhu.storage.catalog import Catalog

        return self._once("catalog", lambda: Catalog(self.settings.storage.catalog), Catalog.close)

    @property
    def predictions(self) -> PredictionStore:
        """The prediction store (raw and blended forecasts), in the catalog's database."""
        from sparkhu.storage.predictions import PredictionStore

        alpha = self.settings.forecast.alpha
        return self._once("predictions", lambda: PredictionStore(self.catalog.engine, alpha=alpha))

    @property
    def bus(self) -> Bus:
        """The bus (``[bus] uri``)."""
        from sparkhu.stream import open_bus

        bus = self.settings.bus

        def open_() -> Bus:
            return open_bus(
                bus.uri, default_partitions=bus.partitions, client=bus.client, consumer=bus.consumer
            )

        return self._once("bus", open_, lambda opened: opened.close())

    @property
    def registry(self) -> ModelRegistry:
        """The model registry (MLflow at ``[mlflow] tracking_uri``), recording runs in the catalog."""
        from sparkhu.forecast.registry import ModelRegistry

        return self._once("registry", lambda: ModelRegistry.from_settings(self.settings, self.catalog))

    @property
    def engine(self) -> Engine:
        """The shared engine (``[engine] uri``); started on its first call."""
        return self._once("engine", self.open_engine, lambda opened: opened.close())

    def open_engine(self, **options: Any) -> Engine:
        """A new engine of ``[engine] uri`` with constructor ``options``, for the caller to close."""
        from sparkhu.engine import open_engine

        return open_engine(self.settings.engine, **options)

    def topic(self, source: str, measurement: str) -> str:
        """The topic of one source's measurement: ``<prefix><source>.<measurement>``."""
        return f"{self.settings.bus.topic_prefix}{source}.{measurement}"

    def resolve_dataset(self, given: str | None) -> str:
        """The dataset a command works on: ``given``, else the one of ``[[sources]]``, else the only one in
        the lake's raw zone; :class:`ConfigError` when that leaves none or several to choose from."""
        if given:
            return given
        configured = sorted({spec.dataset for spec in self.settings.sources})
        candidates = configured or [name for _zone, name in self.lake.datasets("raw")]
        if len(candidates) == 1:
            return candidates[0]
        where = "[[sources]]" if configured else "the lake's raw zone"
        choices = ", ".join(candidates) if candidates else "none yet: ingest some data first"
        raise ConfigError(f"--dataset: name one of the datasets of {where} ({choices})")

    def opened(self) -> list[str]:
        """The backends opened so far, in order."""
        return list(self._opened)

    def close(self) -> None:
        """Release what was opened, the last opened first."""
        with self._lock:
            closers, self._closers = self._closers, []
            self._opened.clear()
        for _name, close in reversed(closers):
            close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
