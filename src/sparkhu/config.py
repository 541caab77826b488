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
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from sparkhu.errors import ConfigError
from sparkhu.plugins import entry_point_names

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

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
        # Built-in schemes, and those plug-ins add to the ``sparkhu.buses`` registry (see sparkhu.stream).
        if uri and urlparse(uri).scheme not in {"sqlite", "kafka", *entry_point_names("sparkhu.buses")}:
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
    champion_poll_s: float = Field(default=30.0, gt=0.0)
    """Seconds between looks at the registry's champions by the online learner (new ones hot-swap in)."""


class PipelineSettings(_Section):
    """The daily cleaning DAG: when ``sparkhu up`` runs it and how it retries."""

    schedule: str = "00:10"
    """When finished days are processed: a UTC time of day (``HH:MM``) or a five-field cron expression
    (UTC; ``"10 */6 * * *"``). Missed days are caught up at start."""
    retries: int = Field(default=2, ge=0, le=20)
    backoff_s: float = Field(default=0.5, ge=0.0)
    lookback_s: dict[str, float] = {}
    """Look-back overrides per task in seconds, e.g. ``{regularity = 2592000}``."""
    exclude: list[str] = []
    """Tasks left out (with the tasks that depend on them)."""

    @field_validator("schedule")
    @classmethod
    def _schedule_form(cls, schedule: str) -> str:
        # HH:MM needs no trigger to be valid: every command loads settings, few run the scheduler.
        if not _CLOCK_RE.fullmatch(schedule):
            schedule_trigger(schedule)
        return schedule

    def trigger(self) -> CronTrigger:
        """The trigger of :attr:`schedule` (see :func:`schedule_trigger`)."""
        return schedule_trigger(self.schedule)


_CLOCK_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def schedule_trigger(schedule: str) -> CronTrigger:
    """A schedule's trigger: ``HH:MM`` (UTC, daily) or a five-field cron expression (UTC).

    >>> from datetime import datetime, UTC
    >>> schedule_trigger("00:10").get_next_fire_time(None, datetime(2024, 1, 1, 12, tzinfo=UTC))
    datetime.datetime(2024, 1, 2, 0, 10, tzinfo=datetime.timezone.utc)
    >>> schedule_trigger("*/15 * * * *").get_next_fire_time(None, datetime(2024, 1, 1, 12, 1, tzinfo=UTC))
    datetime.datetime(2024, 1, 1, 12, 15, tzinfo=datetime.timezone.utc)
    """
    from apscheduler.triggers.cron import CronTrigger

    if clock := _CLOCK_RE.fullmatch(schedule):
        return CronTrigger(hour=int(clock.group(1)), minute=int(clock.group(2)), timezone=UTC)
    try:
        return CronTrigger.from_crontab(schedule, timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"expected HH:MM (UTC) or a cron expression such as '10 0 * * *' ({exc})") from None


class AirflowSettings(_Section):
    """The Airflow DAGs ``sparkhu airflow dags`` generates (schedule and retries: ``[pipeline]``)."""

    sparkhu: str = ""
    """The command that runs sparkhu on the Airflow workers (split like a shell line); empty: the
    ``sparkhu`` script beside the Python that generates the DAGs."""
    operator: Literal["subprocess", "inprocess", "spark-submit"] = "subprocess"
    """How a task runs sparkhu: a subprocess of the worker, inside the worker's Python (sparkhu installed
    in Airflow's environment), or submitted to Spark with ``spark-submit``."""
    spark_submit: str = "spark-submit"
    """The ``spark-submit`` command of the ``spark-submit`` operator; the master is ``[engine] uri``."""
    start_date: str | None = None
    """First logical day (``YYYY-MM-DD``) of the generated DAGs; none: the first day of the data."""
    catchup: bool = True
    """Let Airflow run every missed day since ``start_date``, as sparkhu's own scheduler does."""
    retry_delay_s: float = Field(default=300.0, ge=0.0)
    task_timeout_s: float = Field(default=6 * 3600.0, gt=0.0)
    """Airflow's ``execution_timeout`` of one task (one sparkhu command)."""
    run_timeout_s: float | None = Field(default=None, gt=0.0)
    """Airflow's ``dagrun_timeout``; none: no bound."""
    deadline_s: float | None = Field(default=None, gt=0.0)
    """Deadline of a run after it was queued (Airflow 3's successor of SLAs); needs ``deadline_callback``."""
    deadline_callback: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    """Dotted path of the callable Airflow calls when a run misses its deadline."""
    train_schedule: str = "30 1 * * 0"
    """When the training DAG runs (``HH:MM`` daily or cron, UTC) unless a training policy says otherwise."""
    dag_prefix: str = Field(default="sparkhu", pattern=r"^[A-Za-z0-9_.\-]+$")

    @field_validator("train_schedule")
    @classmethod
    def _train_schedule_form(cls, schedule: str) -> str:
        if not _CLOCK_RE.fullmatch(schedule):
            schedule_trigger(schedule)
        return schedule

    @field_validator("start_date")
    @classmethod
    def _start_date_form(cls, day: str | None) -> str | None:
        if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise ValueError("expected a day YYYY-MM-DD")
        return day


class DemoSettings(_Section):
    days: int = Field(default=14, ge=1, le=3650)
    meters: int = Field(default=11, ge=10, le=64)
    seed: int = 7
    speed: float = Field(default=60.0, gt=0.0)
    replay_days: float = Field(default=1.0, gt=0.0)
    timezone: str = "Asia/Seoul"
    """The dashboard's timezone in the demo (the original system's)."""


class SourceSettings(_Section):
    """What every ``[[sources]]`` entry of ``sparkhu.toml`` has: a name, a ``kind`` and the series' naming.

    The connector of the ``kind`` owns the rest of the entry: its settings model subclasses this one
    and is registered in :data:`sparkhu.connectors.SOURCES` (see
    :func:`sparkhu.connectors.source_settings`), so an unknown kind or field is named when the
    platform starts. Here the entry's other fields are kept as given.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    """Unique connector name; the catalog keeps its watermark under it."""
    kind: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")
    source: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    """First part of the series ids (``source/measurement/field``) and of the topic and dataset names."""
    measurement: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    """Second part of the series ids."""

    @classmethod
    def of(cls, **fields: Any) -> Self:
        """Build one from keyword fields (CLI options); a bad field raises :class:`ConfigError` naming it."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise ConfigError(validation_message(exc)) from exc

    @property
    def dataset(self) -> str:
        """The lake dataset (and topic suffix) of this source's measurement."""
        return dataset_name(self.source, self.measurement)


class SinkSettings(_Section):
    """What every ``[[sinks]]`` entry has; the sink of its ``kind`` owns the rest (see
    :data:`sparkhu.connectors.SINKS`). The lake sink of every topic is always there; these come besides."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    kind: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")
    topics: list[str] | None = None
    """The sources' datasets (``<source>_<measurement>``) whose topics it consumes; none: every one."""


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the first invalid key of ``exc``: ``key: what was expected (got value)``."""
    first = exc.errors()[0]
    key = ".".join(str(part) for part in (*([prefix] if prefix else []), *first["loc"]))
    message = first["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (got {first.get('input')!r})"


def dataset_name(source: str, measurement: str) -> str:
    """The lake dataset of one source's measurement: ``ampds2`` + ``electricity`` → ``ampds2_electricity``."""
    return f"{source}_{measurement}".replace("/", "_")


class Settings(_Section):
    home: Path = Path("~/.sparkhu")
    timezone: str = "UTC"
    """Display timezone at the edges (dashboard, CLI); everything inside is UTC."""
    storage: StorageSettings = StorageSettings()
    bus: BusSettings = BusSettings()
    mlflow: MlflowSettings = MlflowSettings()
    engine: EngineSettings = EngineSettings()
    gateway: GatewaySettings = GatewaySettings()
    forecast: ForecastSettings = ForecastSettings()
    demo: DemoSettings = DemoSettings()
    pipeline: PipelineSettings = PipelineSettings()
    airflow: AirflowSettings = AirflowSettings()
    sources: list[SourceSettings] = []
    sinks: list[SinkSettings] = []
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    def origin(self, key: str) -> str:
        """Where the dotted ``key`` (or its nearest parent) was set: a file, a variable, the command line."""
        return _origin_of(self._origins, key)

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
            settings = cls.model_validate(data)
        except ValidationError as exc:
            key = ".".join(str(part) for part in exc.errors()[0]["loc"])
            where = _origin_of(origin, key)
            raise ConfigError(f"{where}: {validation_message(exc)}") from exc
        settings._origins = origin
        return settings


def _origin_of(origin: Mapping[str, str], key: str) -> str:
    """The origin of ``key`` or of its nearest parent; ``settings`` for a default."""
    parts = key.split(".")
    prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
    return next((origin[p] for p in prefixes if p in origin), "settings")


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
