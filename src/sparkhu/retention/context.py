"""What retention works on: the backends and the ``[retention]`` settings, handed in by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparkhu.config import RetentionSettings
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.timeaxis import now_us


@dataclass
class RetentionContext:
    """The lake and catalog (always), the prediction store, bus and registry (when there are some).

    ``archive`` is the archive root URI or folder; ``bus`` the bus or a function opening it on first
    use; ``clock`` gives now in µs (tests fix it).
    """

    lake: Lake
    catalog: Catalog
    settings: RetentionSettings
    archive: str
    predictions: Any = None
    bus: Any = None
    registry: Any = None
    clock: Any = field(default=now_us)
    reports: str | None = None
    """The pipeline's report folder (``<home>/reports``), a ``reports`` policy's target."""
    lease_ttl_s: float = 60.0
    """How long the pass lease lasts without a heartbeat (renewed every third of it while held)."""
    leases: int = field(default=0, repr=False)
    """How deep this context holds the pass lease (``apply.exclusive`` is re-entrant)."""

    def get_bus(self) -> Any:
        """The bus (opened now if it was given as a function), or None."""
        if callable(self.bus):
            self.bus = self.bus()
        return self.bus

    def now(self) -> int:
        """Now, µs since the epoch (UTC)."""
        return int(self.clock())
