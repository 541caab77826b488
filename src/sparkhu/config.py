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
from datetime import UTC, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, get_args
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from sparkhu.errors import ConfigError
from sparkhu.plugins import entry_point_names

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

DEFAULT_TOML = "sparkhu.toml"
ENV_PREFIX = "SPARKHU_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


LAKE_SCHEMES = ("file", "local", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "mock")
"""URI schemes of a lake root that pyarrow's filesystems serve (``storage.lake``); plug-ins add theirs
to the ``sparkhu.filesystems`` entry point group; any other scheme fsspec knows is opened through it."""
_LAKE_FORMS = "a folder path or a URI such as file:///srv/lake or s3://bucket/lake"


def fsspec_schemes() -> frozenset[str]:
    """URI schemes fsspec can open (its built-in and registered implementations); empty without fsspec."""
    try:
        from fsspec.registry import known_implementations, registry
    except ImportError:
        return frozenset()
    return frozenset({*known_implementations, *registry})


class StorageSettings(_Section):
    lake: str = ""
    """The lake root: a folder (relative to the working directory) or a URI of :data:`LAKE_SCHEMES`."""
    catalog: str = ""
    layout: Literal["date", "hourly"] = "date"
    """``date``: ``date=YYYY-MM-DD``; ``hourly``: Kafka Connect HDFS3 ``year=/month=/day=/hour=``."""

    @field_validator("lake")
    @classmethod
    def _lake_root(cls, root: str) -> str:
        if not root:
            return root  # the default, inside home
        if "://" in root:
            scheme, _, rest = root.partition("://")
            known = {*LAKE_SCHEMES, *entry_point_names("sparkhu.filesystems")}
            if scheme not in known and scheme not in fsspec_schemes():
                raise ValueError(
                    f"unknown URI scheme {scheme!r}; expected {_LAKE_FORMS} "
                    f"({', '.join(sorted(known))}, or a scheme of an installed fsspec implementation)"
                )
            if not rest.strip("/"):
                raise ValueError(f"the URI names no bucket or folder; expected {_LAKE_FORMS}")
            return root
        # a colon before the first slash is a URI gone wrong ("::::", "s3:bucket"), not a folder
        if not root.strip() or ":" in root.split("/", 1)[0] or "\0" in root:
            raise ValueError(f"expected {_LAKE_FORMS}")
        return root

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
    """Bearer token required by mutations; ``None`` or blank (``SPARKHU_GATEWAY__TOKEN=""``) disables them."""
    max_points: int = Field(default=100_000, ge=1)
    """Upper bound on the points one query may return."""
    max_query_cost: int = Field(default=2_000_000, ge=1)
    """Budget of one GraphQL request: points requested over all its fields and aliases (a field
    without a limit counts ``max_points``), each field counted once per row of the lists around it."""
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    """Live operations one WebSocket may hold at once; more are refused (``TOO_MANY_SUBSCRIPTIONS``)."""
    max_subscriptions: int = Field(default=2_000, ge=1)
    """Live operations the whole gateway may hold at once."""

    @field_validator("token")
    @classmethod
    def _blank_token_is_none(cls, token: str | None) -> str | None:
        # An empty variable means "no token": mutations stay disabled, never "enabled with ''".
        return token if token is not None and token.strip() else None


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
        return check_schedule(schedule)

    def trigger(self) -> CronTrigger:
        """The trigger of :attr:`schedule` (see :func:`schedule_trigger`)."""
        return schedule_trigger(self.schedule)


_CLOCK_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def check_schedule(schedule: str) -> str:
    """``schedule`` if it is ``HH:MM`` or a cron expression, else the ValueError saying what was expected.

    HH:MM needs no trigger to be valid: every command loads settings, few run a scheduler.

    >>> check_schedule("00:10"), check_schedule("10 */6 * * *")
    ('00:10', '10 */6 * * *')
    """
    if not _CLOCK_RE.fullmatch(schedule):
        schedule_trigger(schedule)
    return schedule


def schedule_trigger(schedule: str, timezone: tzinfo = UTC) -> CronTrigger:
    """A schedule's trigger: ``HH:MM`` (daily) or a five-field cron expression, in ``timezone`` (UTC).

    >>> from datetime import datetime, UTC
    >>> schedule_trigger("00:10").get_next_fire_time(None, datetime(2024, 1, 1, 12, tzinfo=UTC))
    datetime.datetime(2024, 1, 2, 0, 10, tzinfo=datetime.timezone.utc)
    >>> schedule_trigger("*/15 * * * *").get_next_fire_time(None, datetime(2024, 1, 1, 12, 1, tzinfo=UTC))
    datetime.datetime(2024, 1, 1, 12, 15, tzinfo=datetime.timezone.utc)
    """
    from apscheduler.triggers.cron import CronTrigger

    if clock := _CLOCK_RE.fullmatch(schedule):
        return CronTrigger(hour=int(clock.group(1)), minute=int(clock.group(2)), timezone=timezone)
    try:
        return CronTrigger.from_crontab(schedule, timezone=timezone)
    except ValueError as exc:
        raise ValueError(f"expected HH:MM (UTC) or a cron expression such as '10 0 * * *' ({exc})") from None


RetentionTarget = Literal[
    "raw", "validated", "clean", "features", "analysis", "quarantine",
    "bus", "predictions.raw", "predictions.blended", "registry", "runs", "reports", "archive",
]  # fmt: skip
"""What a retention policy governs: a lake zone, the bus, the prediction store, the registry, run
history, the pipeline's report folders, or the archive (disposal)."""
RETENTION_TARGETS: tuple[str, ...] = get_args(RetentionTarget)


class RetentionLevel(_Section):
    """One rung of a downsample ladder: buckets of ``every_s`` seconds, kept ``keep_days`` days."""

    every_s: int = Field(ge=1)
    keep_days: float = Field(ge=0)


class RetentionPolicySettings(_Section):
    """One retention policy (``[[retention.policies]]``); :mod:`sparkhu.retention.policies` applies it.

    Rows older than ``keep_months`` calendar months plus ``keep_days`` days (and older than
    ``start_date`` when given, as the original's backup policy) are acted on; ``max_bytes`` also acts
    on the oldest partitions while a dataset is larger. ``match`` selects datasets, topics or
    model names (a glob), ``series`` the series (a glob).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    target: RetentionTarget = "raw"
    match: str = "*"
    series: str = "*"
    action: Literal["delete", "archive", "downsample"] = "delete"
    keep_days: float = Field(default=0.0, ge=0)
    keep_months: int = Field(default=0, ge=0)
    start_date: str | None = None
    max_bytes: int | None = Field(default=None, ge=0)
    keep_versions: int | None = Field(default=None, ge=1)
    levels: list[RetentionLevel] = []
    enabled: bool = True

    @property
    def age_days(self) -> float:
        """The age past which rows are acted on, in days (a month counted as 30 days)."""
        return self.keep_days + 30.0 * self.keep_months


class RetentionSettings(_Section):
    """Retention: when it runs, where archives go, the floor no policy goes under, and the policies."""

    schedule: str = "00:00"
    """When ``sparkhu up`` runs retention: ``HH:MM`` or a five-field cron expression, in ``timezone``."""
    timezone: str = "UTC"
    floor_days: float = Field(default=1.0, ge=0)
    """The minimum retention: no policy deletes or archives rows younger than this."""
    training_days: float = Field(default=30.0, ge=0)
    """Rows this recent are kept in raw/clean/features while a live model (champion, challenger) exists."""
    soft_delete_days: float = Field(default=7.0, ge=0)
    """Deleted lake files stay in the trash this long; ``sparkhu retention undo`` brings them back."""
    archive: str = ""
    """Where archives go (any pyarrow/fsspec URI); default ``<home>/archive``."""
    policies: list[RetentionPolicySettings] = []

    @field_validator("schedule")
    @classmethod
    def _retention_schedule(cls, schedule: str) -> str:
        return check_schedule(schedule)

    @field_validator("timezone")
    @classmethod
    def _retention_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as UTC or Asia/Seoul") from None
        return timezone

    @field_validator("policies")
    @classmethod
    def _floor(
        cls, policies: list[RetentionPolicySettings], info: ValidationInfo
    ) -> list[RetentionPolicySettings]:
        floor = info.data.get("floor_days", 0.0)
        for i, policy in enumerate(policies):
            acts_by_age = policy.age_days > 0 or policy.start_date is not None
            if policy.action != "downsample" and acts_by_age and policy.age_days < floor:
                raise ValueError(
                    f"policies.{i}.keep_days: {policy.name!r} keeps {policy.age_days:g} day(s), under the "
                    f"retention floor floor_days = {floor:g}"
                )
        return policies


def _span_field(text: str, name: str) -> str:
    """``text`` if it is a positive span (``30d``, ``6h``, ``15min``), else the ValueError saying so."""
    from sparkhu.errors import InputError
    from sparkhu.timeaxis import parse_duration

    try:
        parse_duration(text, name)
    except InputError:
        raise ValueError("expected a positive span such as 15min, 6h, 30d or 2w") from None
    return text


class PromotionGate(_Section):
    """When a challenger may replace the champion (``[policies.gate]``)."""

    margin: float = Field(default=0.05, ge=0.0, lt=1.0)
    """The challenger's live MAE must be at most ``(1 - margin)`` × the champion's, on the same points."""
    min_points: int = Field(default=30, ge=1, le=1_000_000)
    """Forecasts compared (the same origin and target for both models, target observed) before deciding."""
    backtest_not_worse: bool = True
    """Also require the challenger's back-test MASE to be no worse than the champion's."""


class TrainingPolicy(_Section):
    """One training policy (``[[policies]]`` of ``sparkhu.toml``, or ``sparkhu policies set``).

    ``series`` is a glob over series ids; a series follows the matching policy with the longest
    pattern (ties: the first by name). See ``docs/autopilot.md``.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$")
    series: str = Field(default="*", min_length=1)
    schedule: str | None = None
    """Retrain at these times: ``HH:MM`` (UTC) or a five-field cron expression; none: not on a clock."""
    drift: bool = True
    """Retrain when the champion's live error drifts."""
    min_interval: str = "1h"
    """Never start two retrains of one series closer than this."""
    max_model_age: str | None = None
    """Retrain a champion older than this (``30d``); none: no age limit."""
    budget_per_hour: int = Field(default=10, ge=1, le=100_000)
    """Retrains this policy may start in any hour, over all its series."""
    window: str = "30d"
    """Train on the last span of the lake's data."""
    engine: Literal["local", "spark"] = "local"
    gate: PromotionGate = PromotionGate()
    rollback_margin: float = Field(default=0.1, ge=0.0, le=100.0)
    """After a promotion, roll back when the new champion's live MAE exceeds the old one's by this
    fraction."""
    gate_training: bool = False
    """``sparkhu train`` registers this policy's series as challengers (shadowed, promoted by the gate)
    instead of promoting blindly."""

    @field_validator("schedule")
    @classmethod
    def _policy_schedule(cls, schedule: str | None) -> str | None:
        return None if schedule is None else check_schedule(schedule)

    @field_validator("min_interval", "window")
    @classmethod
    def _spans(cls, text: str, info: ValidationInfo) -> str:
        return _span_field(text, str(info.field_name))

    @field_validator("max_model_age")
    @classmethod
    def _age(cls, text: str | None) -> str | None:
        return None if text is None else _span_field(text, "max_model_age")

    @field_validator("series")
    @classmethod
    def _glob(cls, pattern: str) -> str:
        if "//" in pattern or pattern.startswith("/") or any(c.isspace() for c in pattern):
            raise ValueError("expected a glob over series ids such as 'ampds2/electricity/*'")
        return pattern

    @classmethod
    def of(cls, fields: Any, where: str = "policy") -> TrainingPolicy:
        """A policy from a mapping (CLI, GraphQL); an impossible value is one ConfigError naming the field.

        >>> TrainingPolicy.of({"name": "p", "gate": {"margin": 0.02}}).gate.margin
        0.02
        >>> TrainingPolicy.of({"name": "p", "window": "soon"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sparkhu.errors.ConfigError: policy: window: expected a positive span such as 15min, ... (got 'soon')
        """
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{where}: expected an object of policy fields, got {type(fields).__name__}")
        try:
            return cls.model_validate(dict(fields))
        except ValidationError as exc:
            raise ConfigError(f"{where}: {validation_message(exc)}") from exc


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
        return check_schedule(schedule)

    @field_validator("start_date")
    @classmethod
    def _start_date_form(cls, day: str | None) -> str | None:
        if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise ValueError("expected a day YYYY-MM-DD")
        return day


class MetadataSettings(_Section):
    """``[metadata]``: where lineage events go, in the OpenLineage format."""

    openlineage: str = ""
    """A file (``events.jsonl`` or ``file:///...``: one event a line, appended) or an ``http(s)://`` endpoint
    (each event POSTed as JSON, e.g. ``http://marquez:5000/api/v1/lineage``); empty: none are sent."""
    namespace: str = Field(default="sparkhu", pattern=r"^[A-Za-z0-9_.:/\-]+$")
    """The OpenLineage namespace of sparkhu's jobs."""
    openlineage_timeout_s: float = Field(default=10.0, gt=0.0)


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
    stop_timeout_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    """How long ``up``, ``demo`` and ``serve`` give their services to finish the batch in hand when
    asked to stop (SIGTERM, Ctrl-C, ``--duration``) before they exit anyway."""
    storage: StorageSettings = StorageSettings()
    bus: BusSettings = BusSettings()
    mlflow: MlflowSettings = MlflowSettings()
    engine: EngineSettings = EngineSettings()
    gateway: GatewaySettings = GatewaySettings()
    forecast: ForecastSettings = ForecastSettings()
    demo: DemoSettings = DemoSettings()
    pipeline: PipelineSettings = PipelineSettings()
    retention: RetentionSettings = RetentionSettings()
    airflow: AirflowSettings = AirflowSettings()
    metadata: MetadataSettings = MetadataSettings()
    sources: list[SourceSettings] = []
    sinks: list[SinkSettings] = []
    policies: list[TrainingPolicy] = []
    """Training policies of the controller (``[[policies]]``); more are set at run time
    (``sparkhu policies``)."""
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("policies")
    @classmethod
    def _unique_policies(cls, policies: list[TrainingPolicy]) -> list[TrainingPolicy]:
        seen: set[str] = set()
        for i, policy in enumerate(policies):
            if policy.name in seen:
                raise ValueError(f"{i}.name: a second policy named {policy.name!r}; names are unique")
            seen.add(policy.name)
        return policies

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
