"""Connectors: sources that bring points onto the bus, sinks that take them off it.

Both are found by ``kind`` in a registry of settings models: an entry of ``[[sources]]`` (or
``[[sinks]]``) in ``sparkhu.toml`` is validated by the model registered under its ``kind`` —
which owns the connector's own fields and ``open``\\ s the connector — so an unknown kind or field
stops the platform with one line naming it. Built-in kinds: sources ``file``, ``replay``,
``influxdb`` and ``kafka``; sinks ``lake`` and ``influxdb``. A third party adds a kind with one
module (a settings model and its connector) and one entry point of the ``sparkhu.sources`` /
``sparkhu.sinks`` group; see docs/extending.md.

>>> spec = source_settings({"name": "m", "kind": "file", "path": "a.csv", "source": "home",
...                         "measurement": "power"})
>>> type(spec).__name__, spec.dataset
('FileSourceSettings', 'home_power')
>>> source_settings({"name": "m", "kind": "ftp", "source": "s", "measurement": "m"})
Traceback (most recent call last):
...
sparkhu.errors.ConfigError: sources.m.kind: unknown source kind 'ftp'; known: file, influxdb, kafka, replay
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sparkhu.config import Settings, SinkSettings, SourceSettings, validation_message
from sparkhu.connectors.base import SinkSpec, SourceSpec
from sparkhu.connectors.files import FileSourceSettings
from sparkhu.connectors.influx_sink import InfluxSinkSettings
from sparkhu.connectors.influxdb import InfluxSourceSettings
from sparkhu.connectors.kafka_topic import KafkaTopicSourceSettings
from sparkhu.connectors.lake_sink import LakeSinkSettings
from sparkhu.connectors.replay import ReplaySourceSettings
from sparkhu.errors import ConfigError
from sparkhu.plugins import Registry

__all__ = [
    "SINKS",
    "SOURCES",
    "configured_sinks",
    "configured_sources",
    "sink_settings",
    "source_settings",
]

SOURCES: Registry[type[SourceSpec]] = Registry("source kind", group="sparkhu.sources")
"""``kind`` → the settings model of that source (a :class:`SourceSpec` whose ``open`` builds it)."""
SOURCES.register("file", FileSourceSettings)
SOURCES.register("replay", ReplaySourceSettings)
SOURCES.register("influxdb", InfluxSourceSettings)
SOURCES.register("kafka", KafkaTopicSourceSettings)

SINKS: Registry[type[SinkSpec]] = Registry("sink kind", group="sparkhu.sinks")
"""``kind`` → the settings model of that sink (a :class:`SinkSpec` whose ``open`` builds it per topic)."""
SINKS.register("lake", LakeSinkSettings)
SINKS.register("influxdb", InfluxSinkSettings)

_Spec = TypeVar("_Spec", bound=BaseModel)


def source_settings(entry: SourceSettings | Mapping[str, Any], where: str = "sources") -> SourceSpec:
    """One ``[[sources]]`` entry validated by the settings model of its ``kind``."""
    return _resolve(SOURCES, entry, where)


def sink_settings(entry: SinkSettings | Mapping[str, Any], where: str = "sinks") -> SinkSpec:
    """One ``[[sinks]]`` entry validated by the settings model of its ``kind``."""
    return _resolve(SINKS, entry, where)


def configured_sources(settings: Settings) -> list[SourceSpec]:
    """Every ``[[sources]]`` entry of ``settings``, validated; errors name the file or variable at fault.

    Names must be unique: the catalog keeps each connector's watermark under its name.
    """
    specs = [_with_origin(settings, "sources", i, e, source_settings) for i, e in enumerate(settings.sources)]
    _check_unique(specs, "sources")
    return specs


def configured_sinks(settings: Settings) -> list[SinkSpec]:
    """Every ``[[sinks]]`` entry of ``settings``, validated (the lake sink is always there besides)."""
    specs = [_with_origin(settings, "sinks", i, e, sink_settings) for i, e in enumerate(settings.sinks)]
    _check_unique(specs, "sinks")
    return specs


def _resolve(registry: Registry[type[_Spec]], entry: BaseModel | Mapping[str, Any], where: str) -> _Spec:
    data = entry.model_dump(exclude_unset=True) if isinstance(entry, BaseModel) else dict(entry)
    name = data.get("name", "?")
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"{where}.{name}.kind: missing; known kinds: {', '.join(registry.keys())}")
    try:
        model = registry.get(kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{name}.kind: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, prefix=f"{where}.{name}")) from exc


def _with_origin(settings: Settings, section: str, index: int, entry: Any, resolve: Any) -> Any:
    try:
        return resolve(entry, section)
    except ConfigError as exc:
        raise ConfigError(f"{settings.origin(f'{section}.{index}')}: {exc}") from exc


def _check_unique(specs: list[Any], section: str) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"{section}.{spec.name}: the name is used twice; each entry needs its own")
        seen.add(spec.name)
