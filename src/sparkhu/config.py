"""Settings: the one place sparkhu reads its configuration.

Values come, later ones winning, from the defaults below, a ``sparkhu.toml`` file and
``SPARKHU_*`` environment variables (``SPARKHU_HOME`` for the home directory,
``SPARKHU_<SECTION>__<KEY>`` for everything else, e.g. ``SPARKHU_GATEWAY__PORT=9000``).
Every backend is chosen by URI, so the distributed engines slot in without changing callers:

=========  ==========================================  ======================================
backend    embedded default (inside ``home``)           distributed
=========  ==========================================  ======================================
lake       ``file://<home>/lake``                       ``s3://``, ``hdfs://``, any fsspec URI
catalog    ``sqlite:///<home>/catalog.db`` (WAL)        ``postgresql://user@host/db``
bus        ``sqlite:///<home>/bus.db``                  ``kafka://host:9092``
mlflow     ``sqlite:///<home>/mlflow.db``               ``http://mlflow:5000``
engine     ``local``                                    ``spark://master:7077``, ``local[N]``
=========  ==========================================  ======================================

Nothing else in the package reads the environment: the CLI builds a :class:`Settings` and
hands it (or the objects built from it) down.

>>> s = Settings.load(env={"SPARKHU_HOME": "/tmp/sh", "SPARKHU_GATEWAY__PORT": "9001"}, toml_path=None)
>>> s.gateway.port, s.storage.catalog
(9001, 'sqlite:////tmp/sh/catalog.db')
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sparkhu.errors import ConfigError

DEFAULT_TOML = "sparkhu.toml"
ENV_PREFIX = "SPARKHU_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageSettings(_Section):
    lake: str = ""
    catalog: str = ""
    layout: Literal["date", "hourly"] = "date"
    """``date``: ``date=YYYY-MM-DD``; ``hourly``: Kafka Connect HDFS3 ``year=/month=/day=/hour=``."""

    @field_validator("catalog")
    @classmethod
    def _catalog_scheme(cls, uri: str) -> str:
        if uri and urlparse(uri).scheme.split("+")[0] not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("expected sqlite:///path or postgresql://user@host/db")
        return uri


class BusSettings(_Section):
    uri: str = ""
    topic_prefix: str = "sparkhu."
    partitions: int = Field(default=4, ge=1, le=1024)
    client: dict[str, str | int | float | bool] = {}
    """Kafka only: librdkafka settings of every client (``security.protocol``, ``sasl.mechanism``...)."""
    consumer: dict[str, str | int | float | bool] = {}
    """Kafka only: librdkafka consumer settings (``session.timeout.ms``, ``max.poll.interval.ms``...).
    Keys may use ``_`` for ``.`` so that ``SPARKHU_BUS__CONSUMER__SESSION_TIMEOUT_MS`` works."""

    @field_validator("uri")
    @classmethod
    def _bus_scheme(cls, uri: str) -> str:
        if uri and urlparse(uri).scheme not in {"sqlite", "kafka"}:
            raise ValueError("expected sqlite:///path or kafka://host:port[,host:port]")
        return uri


class MlflowSettings(_Section):
    tracking_uri: str = ""


class EngineSettings(_Section):
    uri: str = "local"
    workers: int = Field(default=0, ge=0, le=512)
    """Local process-pool size; 0 means one per core."""


class GatewaySettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: str | None = None
    """Bearer token required by mutations; ``None`` disables mutations entirely."""
    max_points: int = Field(default=100_000, ge=1)
    """Upper bound on the points one query may return."""


class ForecastSettings(_Section):
    model: Literal["ses", "seasonal_naive"] = "ses"
    alpha: float = Field(default=0.6, gt=0.0, le=1.0)
    """Blending weight of a new forecast in ``S = α·ŷ + (1−α)·S_prev``."""
    horizon: int = Field(default=20, ge=1, le=10_000)
    window: int = Field(default=60, ge=2, le=1_000_000)
    season_length: int = Field(default=1440, ge=1)


class PipelineSettings(_Section):
    """The daily cleaning DAG: when ``sparkhu up`` runs it and how it retries."""

    schedule: str = Field(default="00:10", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    """UTC time of day (HH:MM) at which the previous day is processed (missed days are caught up)."""
    retries: int = Field(default=2, ge=0, le=20)
    backoff_s: float = Field(default=0.5, ge=0.0)
    lookback_s: dict[str, float] = {}
    """Look-back overrides per task in seconds, e.g. ``{regularity = 2592000}``."""
    exclude: list[str] = []
    """Tasks left out (with the tasks that depend on them)."""


class DemoSettings(_Section):
    days: int = Field(default=14, ge=1, le=3650)
    meters: int = Field(default=11, ge=10, le=64)
    seed: int = 7
    speed: float = Field(default=60.0, gt=0.0)
    replay_days: float = Field(default=1.0, gt=0.0)


class SourceSettings(_Section):
    """One ``[[sources]]`` entry of ``sparkhu.toml``: where points come from and how to read them."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    kind: Literal["file", "replay"]
    path: str
    """A file, a folder or a glob (``data/*.csv``)."""
    source: str = Field(default="ampds2", pattern=r"^[A-Za-z0-9_.:\-]+$")
    measurement: str = Field(default="electricity", pattern=r"^[A-Za-z0-9_.:\-]+$")
    format: Literal["auto", "csv", "parquet"] = "auto"
    layout: Literal["auto", "long", "wide"] = "auto"
    field_suffix: str = ""
    """Appended to wide-layout column names: ``WHE`` + ``.P`` → field ``WHE.P``."""
    ts_column: str | None = None
    ts_unit: Literal["s", "ms", "us", "iso"] = "s"
    speed: float = Field(default=1.0, gt=0.0)
    """Replay only: data seconds per wall-clock second."""
    shift: str = "end_now"
    """Replay only: ``end_now``, ``start_now`` or a fixed offset such as ``+3196d``."""

    @field_validator("shift")
    @classmethod
    def _shift_form(cls, shift: str) -> str:
        if not re.fullmatch(r"end_now|start_now|[+-]?\d+(\.\d+)?(s|min|h|d)", shift):
            raise ValueError("expected end_now, start_now or an offset such as +3196d, -2h, 90min")
        return shift

    @classmethod
    def of(cls, **fields: Any) -> SourceSettings:
        """Build one from keyword fields (CLI options); a bad field raises :class:`ConfigError` naming it."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{key}: {message} (got {first.get('input')!r})") from exc

    @property
    def dataset(self) -> str:
        """The lake dataset (and topic suffix) of this source's measurement."""
        return dataset_name(self.source, self.measurement)


def dataset_name(source: str, measurement: str) -> str:
    """The lake dataset of one source's measurement: ``ampds2`` + ``electricity`` → ``ampds2_electricity``."""
    return f"{source}_{measurement}".replace("/", "_")


class Settings(_Section):
    home: Path = Path("~/.sparkhu")
    timezone: str = "Asia/Seoul"
    """Display timezone at the edges (dashboard, CLI); everything inside is UTC."""
    storage: StorageSettings = StorageSettings()
    bus: BusSettings = BusSettings()
    mlflow: MlflowSettings = MlflowSettings()
    engine: EngineSettings = EngineSettings()
    gateway: GatewaySettings = GatewaySettings()
    forecast: ForecastSettings = ForecastSettings()
    demo: DemoSettings = DemoSettings()
    pipeline: PipelineSettings = PipelineSettings()
    sources: list[SourceSettings] = []

    def model_post_init(self, _context: Any) -> None:
        home = self.home.expanduser().absolute()
        object.__setattr__(self, "home", home)
        if not self.storage.lake:
            self.storage.lake = (home / "lake").as_uri()
        if not self.storage.catalog:
            self.storage.catalog = f"sqlite:///{home / 'catalog.db'}"
        if not self.bus.uri:
            self.bus.uri = f"sqlite:///{home / 'bus.db'}"
        if not self.mlflow.tracking_uri:
            self.mlflow.tracking_uri = f"sqlite:///{home / 'mlflow.db'}"

    @classmethod
    def load(
        cls,
        *,
        toml_path: str | Path | None = DEFAULT_TOML,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Read defaults ← ``toml_path`` (if it exists) ← ``env`` ← ``overrides``.

        ``env`` defaults to ``os.environ``; pass ``{}`` for none. ``overrides`` uses dotted
        keys (``{"gateway.port": 0}``). Raises :class:`ConfigError` naming the key at fault.
        """
        data: dict[str, Any] = {}
        origin: dict[str, str] = {}
        if toml_path is not None and Path(toml_path).exists():
            try:
                loaded = tomllib.loads(Path(toml_path).read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{toml_path}: not valid TOML: {exc}") from exc
            for key, value in _flatten(loaded):
                _set(data, key, value)
                origin[key] = str(toml_path)
        environ = os.environ if env is None else env
        for name, value in environ.items():
            if not name.startswith(ENV_PREFIX):
                continue
            key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set(data, key, value)
            origin[key] = f"environment variable {name}"
        for key, value in (overrides or {}).items():
            _set(data, key, value)
            origin[key] = "command line"
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"])
            parts = key.split(".")
            prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
            where = next((origin[p] for p in prefixes if p in origin), "settings")
            expected = first["msg"].removeprefix("Value error, ")
            given = first.get("input")
            raise ConfigError(f"{where}: {key}: {expected} (got {given!r})") from exc


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            items.extend(_flatten(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is a value, not a section")
        node = child
    node[leaf] = value
