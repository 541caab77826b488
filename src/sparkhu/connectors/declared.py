"""Connectors declared at run time, in Kafka Connect's shape, kept in the catalog.

Kafka Connect registers a connector as ``{"name": .., "config": {"connector.class": .., ...}}``. Here
the same request declares a sparkhu connector: ``connector.class`` names a source kind (``influxdb``,
``kafka``, ``file``, ``replay`` or a third party's, with or without a ``sparkhu.`` prefix) or ``lake``
(the HDFS3 sink's place: the topics it names are read into the lake). The rest of the config is
translated (:func:`specs_of`): the original's keys —

=====================================  ======================================================
``influxdb.url`` / ``.db``             ``url``, ``database`` (and ``source``, when not given)
``influxdb.username`` / ``.password``  credentials
``mode``                               ``timestamp`` (the only polling mode; others refused)
``poll.interval.ms``                   ``poll_s``
``timestamp.delay.interval.ms``        ``lag_s``: the window re-read for late points
``batch.max.rows``                     ``chunk_size``
``topics``                             (``lake``) the topics to read, comma-separated
``confluent.topic.bootstrap.servers``  (``lake``) the brokers (or ``bootstrap.servers``)
``timestamp.field``                    (``lake``) the records' time field
=====================================  ======================================================

— and sparkhu's own ``[[sources]]`` fields (``source``, ``measurement``, ``tags``...) are taken as they
are. Other Connect keys (converters, ``tasks.max``, ``topic.prefix``, HDFS paths...) concern Kafka
Connect's own machinery and are kept in the config but not used. An InfluxDB connector without a
``measurement`` reads every measurement of its database, one source each (``<name>.<measurement>``),
as ``topic.mapper=measurement`` did; the measurements are listed when it starts.

:class:`DeclaredConnectors` keeps each declaration in the catalog's ``sources`` table (kind
``connector``: the config, the wanted state ``RUNNING`` or ``PAUSED`` and a generation bumped by every
change and restart), so declared connectors survive a restart of the platform; the status that the
running platform reports (:class:`ConnectorStatus`) is kept beside the connector's watermarks.

>>> config = {"connector.class": "sparkhu.influxdb", "influxdb.url": "http://h:8086",
...           "influxdb.db": "AMPds2", "measurement": "electricity", "mode": "timestamp"}
>>> [s.name for s in specs_of("amp", config)]
['amp']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sparkhu.connectors.base import SourceSpec
from sparkhu.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog

__all__ = ["ConnectorStatus", "Declared", "DeclaredConnectors", "connector_kind", "specs_of"]

KIND = "connector"
"""The ``kind`` of declared connectors' rows in the catalog's ``sources`` table."""
STATUS_KEY = "connector-status"
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_CONNECT_PLAIN = {"mode", "topics", "name"}
_INFLUX_KEYS = {
    "influxdb.url": "url",
    "influxdb.db": "database",
    "influxdb.username": "username",
    "influxdb.password": "password",
    "batch.max.rows": "chunk_size",
}


def connector_kind(config: Mapping[str, Any]) -> str:
    """The source kind ``connector.class`` names (``sparkhu.influxdb`` → ``influxdb``)."""
    value = config.get("connector.class")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("connector.class is missing; e.g. sparkhu.influxdb, sparkhu.kafka, sparkhu.lake")
    return value.strip().removeprefix("sparkhu.").removeprefix("connectors.")


def _ms(config: Mapping[str, Any], key: str) -> float | None:
    value = config.get(key)
    if value is None:
        return None
    try:
        return float(value) / 1000.0
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected milliseconds, got {value!r}") from None


def _native(config: Mapping[str, Any]) -> dict[str, Any]:
    """sparkhu's own fields: the keys without a dot (Connect's have one, but for ``mode`` and ``topics``)."""
    return {k: v for k, v in config.items() if "." not in k and k not in _CONNECT_PLAIN}


def specs_of(
    name: str,
    config: Mapping[str, Any],
    *,
    measurements: Callable[[Mapping[str, Any]], list[str]] | None = None,
) -> list[SourceSpec]:
    """The sources a declared connector runs (see the module docstring); a bad config raises
    :class:`ConfigError` naming the key. ``measurements(fields)`` lists an InfluxDB database's
    measurements when none is given (without it, a placeholder validates the rest)."""
    from sparkhu.connectors import source_settings

    if not _NAME.match(name):
        raise ConfigError(f"connector name {name!r}: use 1-200 letters, digits and _ . : -")
    kind = connector_kind(config)
    where = f"connectors.{name}"
    if kind == "lake":
        return _lake_specs(name, config, where)
    fields: dict[str, Any] = {"name": name, "kind": kind, **_native(config)}
    if kind == "influxdb":
        mode = config.get("mode", "timestamp")
        if mode != "timestamp":
            raise ConfigError(f"{where}.mode: {mode!r} is not supported; use timestamp")
        fields |= {ours: config[theirs] for theirs, ours in _INFLUX_KEYS.items() if theirs in config}
        if "chunk_size" in fields:
            fields["chunk_size"] = int(fields["chunk_size"])
        fields.setdefault("poll_s", _ms(config, "poll.interval.ms") or 1.0)
        lag = _ms(config, "timestamp.delay.interval.ms")
        if lag is not None:
            fields.setdefault("lag_s", lag)
        fields.setdefault("source", fields.get("database"))
        if "measurement" not in fields:
            names = measurements(fields) if measurements is not None else ["measurement"]
            return [
                source_settings({**fields, "name": f"{name}.{m}", "measurement": m}, "connectors")
                for m in names
            ]
    return [source_settings(fields, "connectors")]


def _lake_specs(name: str, config: Mapping[str, Any], where: str) -> list[SourceSpec]:
    """The HDFS3 sink's place: each topic it names read into the lake by a ``kafka`` source."""
    from sparkhu.connectors import source_settings

    topics = config.get("topics")
    if not isinstance(topics, str) or not topics.strip():
        raise ConfigError(f"{where}.topics: name the topics to land, comma-separated")
    servers = config.get("confluent.topic.bootstrap.servers") or config.get("bootstrap.servers")
    if not isinstance(servers, str):
        raise ConfigError(f"{where}.confluent.topic.bootstrap.servers: name the brokers (host:port)")
    specs = []
    for topic in (t.strip() for t in topics.split(",") if t.strip()):
        parts = topic.split("_")
        fields = {
            "name": name if "," not in topics else f"{name}.{topic}",
            "kind": "kafka",
            "bootstrap": servers,
            "topic": topic,
            "source": parts[0],  # AMPds2_tests_electricity: AMPds2 ... electricity
            "measurement": parts[-1],
            "poll_s": 1.0,
            **_native(config),
        }
        if "timestamp.field" in config:
            fields["time_field"] = config["timestamp.field"]
        specs.append(source_settings(fields, "connectors"))
    return specs


@dataclass(frozen=True)
class Declared:
    """One declared connector: its config, the wanted state, and its generation."""

    name: str
    config: dict[str, Any]
    state: str = "RUNNING"
    generation: int = 0


@dataclass
class ConnectorStatus:
    """What the running platform reports of one connector (saved in the catalog every few seconds)."""

    state: str
    """``RUNNING``, ``PAUSED``, ``FAILED`` or ``UNASSIGNED`` (declared, not picked up yet)."""
    worker_id: str = ""
    tasks: list[dict[str, Any]] = field(default_factory=list)
    """Per source: ``id``, ``name``, ``state``, ``points``, ``quarantined``, ``points_per_s``,
    ``watermark`` and ``lag_s`` (seconds behind the wall clock), ``trace`` when failed."""
    updated_at: str | None = None


class DeclaredConnectors:
    """The declared connectors of a catalog: create, change, pause, resume, restart, delete, status."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def names(self) -> list[str]:
        """Declared connectors' names, sorted."""
        return [row["name"] for row in self.catalog.sources() if row["kind"] == KIND]

    def all(self) -> list[Declared]:
        """Every declared connector."""
        return [_declared(row) for row in self.catalog.sources() if row["kind"] == KIND]

    def get(self, name: str) -> Declared:
        """One declared connector; :class:`NotFoundError` when there is none of that name."""
        for row in self.catalog.sources():
            if row["name"] == name and row["kind"] == KIND:
                return _declared(row)
        raise NotFoundError(f"connector {name!r} not found; declared: {', '.join(self.names()) or 'none'}")

    def exists(self, name: str) -> bool:
        """True when ``name`` is declared."""
        return name in self.names()

    def put(self, name: str, config: Mapping[str, Any]) -> bool:
        """Declare or change ``name`` (validated first); True when it was new."""
        config = {k: v for k, v in config.items() if k != "name"}
        specs_of(name, config)
        taken = {row["name"]: row["kind"] for row in self.catalog.sources()}
        if taken.get(name, KIND) != KIND:
            raise ConfigError(f"connector name {name!r} is taken by a source of kind {taken[name]!r}")
        old = self.get(name) if name in taken else None
        state = old.state if old is not None else "RUNNING"
        generation = old.generation + 1 if old is not None else 0
        self._save(Declared(name, dict(config), state, generation))
        return old is None

    def set_state(self, name: str, state: str) -> Declared:
        """Pause (``PAUSED``) or resume (``RUNNING``) ``name``."""
        old = self.get(name)
        new = Declared(name, old.config, state, old.generation)
        self._save(new)
        return new

    def restart(self, name: str) -> Declared:
        """Ask the platform to restart ``name`` (a new generation)."""
        old = self.get(name)
        new = Declared(name, old.config, old.state, old.generation + 1)
        self._save(new)
        return new

    def delete(self, name: str) -> None:
        """Forget ``name`` (its watermarks stay, so declaring it again resumes)."""
        self.get(name)
        self.catalog.delete_source(name)

    def status(self, name: str) -> ConnectorStatus:
        """The last status the platform reported (``UNASSIGNED`` before it picked the connector up)."""
        declared = self.get(name)
        saved = self.catalog.get_watermark(name, STATUS_KEY)
        if not saved or saved.get("generation") != declared.generation:
            state = "PAUSED" if declared.state == "PAUSED" else "UNASSIGNED"
            return ConnectorStatus(state)
        state = "PAUSED" if declared.state == "PAUSED" else saved["state"]  # paused at once, as Connect shows
        return ConnectorStatus(
            state, saved.get("worker_id", ""), list(saved.get("tasks", [])), saved.get("updated_at")
        )

    def report(self, name: str, generation: int, status: ConnectorStatus) -> None:
        """Save what the platform sees of ``name`` (the status of that generation)."""
        self.catalog.set_watermark(
            name,
            STATUS_KEY,
            {
                "generation": generation,
                "state": status.state,
                "worker_id": status.worker_id,
                "tasks": status.tasks,
                "updated_at": status.updated_at,
            },
        )

    def _save(self, declared: Declared) -> None:
        body = {"config": declared.config, "state": declared.state, "generation": declared.generation}
        self.catalog.upsert_source(declared.name, KIND, body)


def _declared(row: Mapping[str, Any]) -> Declared:
    body = row["config"]
    return Declared(
        row["name"], dict(body.get("config", {})), body.get("state", "RUNNING"), body.get("generation", 0)
    )


def task_names(specs: Sequence[SourceSpec]) -> list[str]:
    """The names of a connector's sources (its tasks), in order."""
    return [spec.name for spec in specs]
