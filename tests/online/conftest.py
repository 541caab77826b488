"""The stream the online learner's tests share: a points topic of three series on the session's bus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sparkhu.stream import open_bus

TOPIC = "points"
SERIES = ["home/power/A", "home/power/B", "home/power/C"]
T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1_000_000)
MIN = 60_000_000


@pytest.fixture
def bus(settings: Any) -> Iterator[Any]:
    with open_bus(
        settings.bus.uri, default_partitions=2, client=settings.bus.client, consumer=settings.bus.consumer
    ) as b:
        b.create_topic(TOPIC)
        yield b
