"""The connector contract: sources read batches of points and say where they stopped.

A :class:`Source` yields ``(batch, position)`` pairs: ``batch`` is a table of
:data:`~sparkhu.series.POINT_SCHEMA`, ``position`` is a JSON-able dict that, handed back to
:meth:`Source.read`, resumes right after that batch. The runner
(:func:`sparkhu.connectors.runner.pump`) publishes the batch, waits until it is durable, then
saves the position as the connector's watermark in the catalog, so a restart resumes with
nothing lost; a batch published but not yet watermarked when the process dies is published
again, and the idempotent lake makes that harmless.

Bad records never stop a source: each is handed to ``quarantine`` (a table of
:data:`~sparkhu.series.QUARANTINE_SCHEMA`) with its reason, and the good ones go on.

A sink of the platform is a :class:`TopicSink`: a consumer of one topic, built per topic by the
``open`` of its :class:`SinkSpec` (the lake sink is one).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
from pydantic import ConfigDict, Field

from sparkhu.config import SinkSettings, SourceSettings

if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake
    from sparkhu.storage.predictions import PredictionStore
    from sparkhu.stream.base import Bus

Position = dict[str, Any]
QuarantineFn = Callable[[pa.Table], None]


class Source(ABC):
    """A source of points: files, a replay of history, InfluxDB, a foreign Kafka topic..."""

    name: str
    """Unique connector name; the catalog keeps its watermark under it."""

    @abstractmethod
    def read(
        self, position: Mapping[str, Any] | None, quarantine: QuarantineFn
    ) -> Iterator[tuple[pa.Table, Position]]:
        """Yield batches after ``position`` (``None``: from the beginning) with the position after each."""


class SourceSpec(SourceSettings, ABC):
    """The settings model of one source kind: the ``[[sources]]`` fields it takes, and how to open it.

    Subclasses set ``kind: Literal["<kind>"]``, declare their own fields (an unknown field is an
    error) and are registered in :data:`sparkhu.connectors.SOURCES`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    repeat_s: float | None = Field(default=None, gt=0.0)
    """Seconds after which a running platform reads the source again once it has ended (files: to
    pick up new ones); none: once."""

    @abstractmethod
    def open(self) -> Source:
        """The connector this entry describes (nothing is read until the runner asks)."""


class Backends(Protocol):
    """The opened backends a sink may use (the application's runtime provides them)."""

    @property
    def lake(self) -> Lake: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def predictions(self) -> PredictionStore: ...


class TopicSink(Protocol):
    """A running sink of one topic: ``run`` consumes until ``stop`` is set; ``figures``: live counts."""

    def run(self, stop: threading.Event) -> Any: ...
    def figures(self) -> dict[str, float]: ...


class SinkSpec(SinkSettings, ABC):
    """The settings model of one sink kind; registered in :data:`sparkhu.connectors.SINKS`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @abstractmethod
    def open(self, backends: Backends, topic: str, dataset: str) -> TopicSink:
        """The sink of ``topic`` (points of lake ``dataset``), consuming as its own group."""
