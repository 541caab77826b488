"""The stream layer: a bus of topics and the codecs of its messages."""

from __future__ import annotations

from urllib.parse import urlparse

from sparkhu.errors import ConfigError
from sparkhu.stream.base import Bus, Consumer, Message, partition_for

__all__ = ["Bus", "Consumer", "Message", "open_bus", "partition_for"]


def open_bus(uri: str, *, default_partitions: int = 4) -> Bus:
    """Open the bus named by ``uri`` (``sqlite:///path`` or ``kafka://host:port``)."""
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        from sparkhu.stream.sqlite import SqliteBus

        return SqliteBus(uri, default_partitions=default_partitions)
    if scheme == "kafka":
        from sparkhu.stream.kafka import KafkaBus

        return KafkaBus(uri, default_partitions=default_partitions)
    raise ConfigError(f"bus URI {uri!r}: expected sqlite:///path or kafka://host:port")
