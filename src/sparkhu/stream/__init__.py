"""The stream layer: a bus of topics and the codecs of its messages.

:func:`open_bus` opens the bus a URI names through :data:`BUSES`, a registry keyed by URI
scheme: ``sqlite`` (the embedded log) and ``kafka`` are built in; a third party adds a scheme
with an entry point in the ``sparkhu.buses`` group naming a :data:`BusFactory`.

>>> sorted(BUSES.keys())[:2]
['kafka', 'sqlite']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from sparkhu.plugins import Registry
from sparkhu.stream.base import Bus, Consumer, Message, partition_for

__all__ = ["BUSES", "Bus", "BusFactory", "Consumer", "Message", "open_bus", "partition_for"]

BusFactory = Callable[..., Bus]
"""``factory(uri, *, default_partitions, client, consumer) -> Bus``; ``client`` and ``consumer`` are
the ``[bus.client]``/``[bus.consumer]`` option tables (a bus without such options ignores them)."""

BUSES: Registry[BusFactory] = Registry("bus scheme", group="sparkhu.buses")


def open_bus(
    uri: str,
    *,
    default_partitions: int = 4,
    client: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
) -> Bus:
    """Open the bus named by ``uri`` (``sqlite:///path``, ``kafka://host:port`` or a registered scheme).

    ``client`` / ``consumer``: librdkafka settings of every Kafka client / of consumers only
    (``[bus.client]`` and ``[bus.consumer]`` in ``sparkhu.toml``; ``_`` in a key stands for
    ``.``); the SQLite bus ignores them.
    """
    factory = BUSES.get(urlparse(uri).scheme)
    return factory(uri, default_partitions=default_partitions, client=client or {}, consumer=consumer or {})


@BUSES.register("sqlite")
def _sqlite_bus(uri: str, *, default_partitions: int, **_options: Any) -> Bus:
    from sparkhu.stream.sqlite import SqliteBus

    return SqliteBus(uri, default_partitions=default_partitions)


@BUSES.register("kafka")
def _kafka_bus(
    uri: str, *, default_partitions: int, client: Mapping[str, Any], consumer: Mapping[str, Any]
) -> Bus:
    from sparkhu.stream.kafka import KafkaBus

    return KafkaBus(
        uri,
        default_partitions=default_partitions,
        consumer_config=_librdkafka(consumer),
        **_librdkafka(client),
    )


def _librdkafka(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """librdkafka keys are dotted; environment variables cannot carry dots, so ``_`` stands for ``.``."""
    return {key.replace("_", "."): value for key, value in (options or {}).items()}
