"""The stream layer: a bus of topics and the codecs of its messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from sparkhu.errors import ConfigError
from sparkhu.stream.base import Bus, Consumer, Message, partition_for

__all__ = ["Bus", "Consumer", "Message", "open_bus", "partition_for"]


def open_bus(
    uri: str,
    *,
    default_partitions: int = 4,
    client: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
) -> Bus:
    """Open the bus named by ``uri`` (``sqlite:///path`` or ``kafka://host:port``).

    ``client`` / ``consumer``: librdkafka settings of every Kafka client / of consumers only
    (``[bus.client]`` and ``[bus.consumer]`` in ``sparkhu.toml``; ``_`` in a key stands for
    ``.``); the SQLite bus ignores them.
    """
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        from sparkhu.stream.sqlite import SqliteBus

        return SqliteBus(uri, default_partitions=default_partitions)
    if scheme == "kafka":
        from sparkhu.stream.kafka import KafkaBus

        return KafkaBus(
            uri,
            default_partitions=default_partitions,
            consumer_config=_librdkafka(consumer),
            **_librdkafka(client),
        )
    raise ConfigError(f"bus URI {uri!r}: expected sqlite:///path or kafka://host:port")


def _librdkafka(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """librdkafka keys are dotted; environment variables cannot carry dots, so ``_`` stands for ``.``."""
    return {key.replace("_", "."): value for key, value in (options or {}).items()}
