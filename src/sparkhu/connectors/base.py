"""The connector contract: sources read batches of points and say where they stopped.

A :class:`Source` yields ``(batch, position)`` pairs: ``batch`` is a table of
:data:`~sparkhu.series.POINT_SCHEMA`, ``position`` is a JSON-able dict that, handed back to
:meth:`Source.read`, resumes right after that batch. The runner
(:func:`sparkhu.connectors.runner.pump`) publishes the batch, waits until it is durable, then
saves the position as the connector's watermark in the catalog, so a restart resumes with
nothing lost; a batch published but not yet watermarked when the process dies is published
again, and the idempotent lake makes that harmless.

Bad records never stop a source: each is handed to ``quarantine`` (a table of
:data:`~sparkhu.storage.lake.QUARANTINE_SCHEMA`) with its reason, and the good ones go on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa

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


class Sink(ABC):
    """A destination of points. ``write`` must be idempotent for the same points."""

    name: str

    @abstractmethod
    def write(self, batch: pa.Table) -> None:
        """Write a batch durably before returning."""

    def close(self) -> None:  # noqa: B027 - optional hook: most sinks hold nothing to release
        """Flush and release resources."""
