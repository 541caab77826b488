"""The model registry: every training run tracked in MLflow, every model versioned and aliased.

:class:`ModelRegistry` is the one door to MLflow (tracking + registry; the embedded default is
MLflow on SQLite inside the home, a tracking server URI works unchanged). MLflow's exceptions
are translated here, at the boundary: a missing model/alias is :class:`NotFoundError`, an
unreachable store :class:`BackendUnavailable`, anything else :class:`ForecastError`.

* :meth:`ModelRegistry.log_training` makes one MLflow run per trained model: parameters,
  metrics, the back-test score table (``backtest.csv``), a back-test plot (``backtest.png``),
  the model's state (``state.json``, e.g. a scaler) and the model itself as an MLflow
  *pyfunc* model wrapping our :class:`~sparkhu.forecast.base.Forecaster` (cloudpickled;
  ``mlflow.pyfunc.load_model("models:/sparkhu.a.b.c@champion").predict(pd.DataFrame({"horizon": [5]}))``
  works for anyone with sparkhu installed). It registers a new version of the model
  ``sparkhu.<series id with / replaced by .>`` (``sparkhu.global.<name>`` for a global model),
  optionally under an alias, and records the version in the catalog.
* Aliases: ``champion`` is the version served; ``challenger`` a candidate waiting for
  promotion. :meth:`ModelRegistry.promote` moves ``champion`` to a version; the version that
  was champion before gets the alias ``previous`` (so ``promote(name, "previous")`` is a
  rollback) and, when the promoted version was the challenger, ``challenger`` is dropped.
* :meth:`ModelRegistry.load` returns the Forecaster of an alias or a version, ready to
  forecast; :meth:`ModelRegistry.served` returns it with what serving needs to know (version,
  period, last training timestamp).

Artifacts go to ``artifact_root`` (``<home>/mlartifacts`` by default, never the working
directory) unless the tracking URI is a server, which then decides where they go.
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from sparkhu.errors import BackendUnavailable, ConfigError, ForecastError, NotFoundError
from sparkhu.forecast.base import Forecaster
from sparkhu.series import is_series_id

with warnings.catch_warnings():  # importing pyfunc warns about its own (agent) type hints
    warnings.filterwarnings("ignore", message=r".*type hint.*", category=UserWarning)
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import PythonModel
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)
PREFIX = "sparkhu."
_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks"}
_KNOWN_WARNINGS = (  # harmless warnings MLflow emits on every use; filtered only around its calls
    (r".*noload.*", DeprecationWarning),
    (r".*Add type hints to the `predict` method.*", UserWarning),
    (r".*Any type hint is inferred as AnyType.*", UserWarning),
    (r".*datetime.datetime.utcnow.*", DeprecationWarning),
)


def registered_name(series_or_name: str) -> str:
    """The registered model name of a series (``a/b/c`` → ``sparkhu.a.b.c``) or a global model.

    >>> registered_name("ampds2/electricity/WHE.P"), registered_name("lstm")
    ('sparkhu.ampds2.electricity.WHE.P', 'sparkhu.global.lstm')
    >>> registered_name("sparkhu.global.lstm")
    'sparkhu.global.lstm'
    """
    if series_or_name.startswith(PREFIX):
        return series_or_name
    if is_series_id(series_or_name):
        return PREFIX + series_or_name.replace("/", ".")
    if not series_or_name or "/" in series_or_name:
        raise ForecastError(
            f"{series_or_name!r} is neither a series id (source/measurement/field) nor a global model name"
        )
    return f"{PREFIX}global.{series_or_name}"


@dataclass(frozen=True)
class Registered:
    """What :meth:`ModelRegistry.log_training` made: the MLflow run and the model version."""

    run_id: str
    name: str
    version: int


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version, as the registry view shows it."""

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str
    series_id: str | None
    model: str
    metrics: dict[str, float] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class Served:
    """A loaded model with what serving needs: ``label`` (``"ses@v3"``) goes into stored forecasts."""

    forecaster: Forecaster
    name: str
    version: int
    series_id: str | None
    period_s: float | None
    last_ts_us: int | None

    @property
    def label(self) -> str:
        """``<model>@v<version>``, the ``model`` column of the forecasts this version makes."""
        return f"{self.forecaster.name}@v{self.version}"


with warnings.catch_warnings():  # PythonModel subclasses are checked for type hints when defined
    warnings.filterwarnings("ignore", message=r".*type hints.*", category=UserWarning)

    class ForecasterModel(PythonModel):
        """The MLflow pyfunc face of a Forecaster: ``predict`` takes a frame with a ``horizon`` column.

        Returns one row per step (``step``, ``value``, ``lower``, ``upper``) for the first row's horizon.
        """

        _skip_type_hint_validation = True  # MLflow: no schema validation of ``predict``'s input

        def __init__(self, forecaster: Forecaster, meta: Mapping[str, Any]) -> None:
            self.forecaster = forecaster
            self.meta = dict(meta)

        def predict(self, context, model_input, params=None) -> pd.DataFrame:  # noqa: ANN001 - MLflow reads these hints
            """Forecast ``model_input["horizon"][0]`` steps (or ``int(model_input)``) from the last point."""
            if isinstance(model_input, pd.DataFrame):
                horizon = int(model_input["horizon"].iloc[0])
            else:
                horizon = int(model_input)
            lower, upper = self.forecaster.forecast_interval(horizon)
            return pd.DataFrame(
                {
                    "step": range(1, horizon + 1),
                    "value": self.forecaster.forecast(horizon),
                    "lower": lower,
                    "upper": upper,
                }
            )


class ModelRegistry:
    """MLflow tracking and model registry for sparkhu models; see the module docstring.

    ``catalog`` (optional) also receives every registered version (name, version, series, uri,
    metrics). Creating a new SQLite tracking database takes MLflow a few seconds (its
    migrations), so the example is not run as a doctest::

        reg = ModelRegistry("sqlite:////tmp/x/mlflow.db", artifact_root="/tmp/x/mlartifacts")
        done = reg.log_training("a/b/c", make_model("ses").fit(np.arange(9.0)), alias="champion")
        reg.load("a/b/c").forecast(2)          # the champion's forecast
        reg.promote("a/b/c", "previous")       # roll back
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        artifact_root: str | Path | None = None,
        experiment: str = "sparkhu",
        catalog: Any = None,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.uri = tracking_uri
        self.experiment = experiment
        self.catalog = catalog
        scheme = urlparse(tracking_uri).scheme.split("+")[0]
        if scheme not in _SCHEMES:
            raise ConfigError(
                f"mlflow.tracking_uri: {tracking_uri!r} is not a tracking URI; expected "
                "sqlite:///path/mlflow.db, postgresql://..., or http://host:port of a tracking server"
            )
        self._remote = scheme in {"http", "https", "databricks"}
        _probe(tracking_uri, scheme, connect_timeout_s)
        self.artifact_root = None
        if artifact_root is not None and not self._remote:
            self.artifact_root = Path(artifact_root).expanduser().absolute()
        with self._boundary(f"opening experiment {experiment!r}"):
            self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            found = self._client.get_experiment_by_name(experiment)
            if found is None:
                location = self.artifact_root.as_uri() if self.artifact_root is not None else None
                self.experiment_id = self._client.create_experiment(experiment, artifact_location=location)
            else:
                self.experiment_id = found.experiment_id

    @classmethod
    def from_settings(cls, settings: Any, catalog: Any = None) -> ModelRegistry:
        """The registry of a :class:`~sparkhu.config.Settings` (artifacts in ``<home>/mlartifacts``)."""
        return cls(
            settings.mlflow.tracking_uri, artifact_root=Path(settings.home) / "mlartifacts", catalog=catalog
        )

    def __repr__(self) -> str:
        return f"ModelRegistry({self.uri!r}, experiment={self.experiment!r})"

    # ---- writing -----------------------------------------------------------------------
    def log_training(
        self,
        series_or_name: str,
        model: Forecaster,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        backtest: pd.DataFrame | None = None,
        plot_png: bytes | None = None,
        state: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        alias: str | None = CHALLENGER,
    ) -> Registered:
        """Track one trained model as an MLflow run and register it as a new version.

        ``params``/``metrics``: logged as such (the model's own hyperparameters are added as
        ``model.<name>``); ``backtest``: the score table; ``plot_png``: a PNG; ``state``:
        JSON-able learned state (a scaler...); ``meta``: kept with the model for serving
        (``period_s``, ``last_ts_us``). ``alias``: ``champion`` (promote at once, see
        :meth:`promote`), ``challenger`` (default) or ``None``.
        """
        if not isinstance(model, Forecaster) or not model.is_fitted:
            raise ForecastError(f"{series_or_name}: log_training needs a fitted Forecaster, got {model!r}")
        if alias is not None and alias not in (CHAMPION, CHALLENGER):
            raise ForecastError(f"alias must be {CHAMPION!r}, {CHALLENGER!r} or None, got {alias!r}")
        name = registered_name(series_or_name)
        series_id = series_or_name if is_series_id(series_or_name) else None
        info = {"series_id": series_id, "model": model.name, **dict(meta or {})}
        all_params = {f"model.{k}": v for k, v in model.params.items()} | dict(params or {})
        clean_metrics = {k: float(v) for k, v in (metrics or {}).items() if v is not None and v == v}
        with self._boundary(f"logging a training run of {name}"), tempfile.TemporaryDirectory() as tmp:
            run = self._client.create_run(
                self.experiment_id,
                run_name=f"train {series_or_name}",
                tags={"sparkhu.model": name, "sparkhu.kind": model.name, "sparkhu.series": str(series_id)},
            )
            run_id = run.info.run_id
            try:
                for key, value in all_params.items():
                    self._client.log_param(run_id, key, _short(value))
                for key, value in clean_metrics.items():
                    self._client.log_metric(run_id, key, value)
                folder = Path(tmp)
                if backtest is not None:
                    backtest.to_csv(folder / "backtest.csv", index=False)
                if plot_png is not None:
                    (folder / "backtest.png").write_bytes(plot_png)
                (folder / "state.json").write_text(json.dumps(dict(state or {}), default=str))
                mlflow.pyfunc.save_model(
                    str(folder / "model"),
                    python_model=ForecasterModel(model, info),
                    pip_requirements=["sparkhu"],
                )
                self._client.log_artifacts(run_id, str(folder))
            except BaseException:
                self._client.set_terminated(run_id, "FAILED")
                raise
            self._client.set_terminated(run_id, "FINISHED")
            self._ensure_model(name, series_id)
            version = self._client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/model",
                run_id=run_id,
                tags={"sparkhu.kind": model.name, "sparkhu.series": str(series_id)},
            )
        number = int(version.version)
        if alias == CHAMPION:
            self.promote(
                name,
                number,
                event="train",
                actor="train",
                reason=f"registered as champion by training run {run_id}",
                numbers=clean_metrics,
            )
        elif alias == CHALLENGER:
            self.set_alias(name, CHALLENGER, number)
        if self.catalog is not None:
            self.catalog.register_model(
                name, str(number), series_id, f"models:/{name}/{number}", clean_metrics
            )
        return Registered(run_id, name, number)

    def _ensure_model(self, name: str, series_id: str | None) -> None:
        try:
            self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self._client.create_registered_model(name, tags={"sparkhu.series": str(series_id)})

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version`` (no other alias moves)."""
        if alias not in ALIASES:
            raise ForecastError(f"alias must be one of {', '.join(ALIASES)}, got {alias!r}")
        name = registered_name(name)
        with self._boundary(f"setting {name}@{alias} to version {version}"):
            self._client.set_registered_model_alias(name, alias, str(int(version)))

    def promote(
        self,
        name: str,
        version: int | str,
        *,
        event: str = "promote",
        actor: str = "sparkhu",
        reason: str = "",
        numbers: Mapping[str, Any] | None = None,
        previous: int | None = None,
        action_id: int | None = None,
    ) -> int:
        """Make ``version`` (a number or an alias) the champion; returns its number.

        The former champion becomes ``previous``; if the promoted version was ``challenger``,
        that alias is removed. With a catalog, the change is appended to its champion history
        (``event``, ``actor``, ``reason``, ``numbers``); ``previous`` names the former champion when
        the caller knows it better (a step replayed after a crash finds itself champion already),
        and ``action_id`` (a controller's cycle) makes the history row be written once.
        """
        name = registered_name(name)
        aliases = self.aliases(name)
        number = aliases.get(version) if isinstance(version, str) and not version.isdigit() else int(version)
        if number is None:
            raise NotFoundError(f"model {name} has no alias {version!r}; aliases: {aliases or 'none'}")
        with self._boundary(f"promoting {name} version {number}"):
            mv = self._client.get_model_version(name, str(number))  # NotFoundError when it does not exist
            old = aliases.get(CHAMPION)
            self._client.set_registered_model_alias(name, CHAMPION, str(number))
            before = previous if previous is not None else old  # a replayed step knows it better
            if before is not None and before != number:
                self._client.set_registered_model_alias(name, PREVIOUS, str(before))
            if aliases.get(CHALLENGER) == number:
                self._client.delete_registered_model_alias(name, CHALLENGER)
        if self.catalog is not None and (old != number or action_id is not None):
            series = (mv.tags or {}).get("sparkhu.series")
            self.catalog.record_champion(
                name,
                series if series not in (None, "None") else None,
                number,
                previous=previous if previous is not None else (old if old != number else None),
                event=event,
                actor=actor,
                reason=reason or f"version {number} made champion",
                numbers=numbers,
                action_id=action_id,
            )
        return number

    def drop_alias(self, name: str, alias: str, version: int | None = None) -> bool:
        """Remove ``alias`` of ``name`` (only while it points at ``version``, when given); True if removed."""
        name = registered_name(name)
        current = self.aliases(name).get(alias)
        if current is None or (version is not None and current != int(version)):
            return False
        with self._boundary(f"removing {name}@{alias}"):
            self._client.delete_registered_model_alias(name, alias)
        return True

    # ---- reading -----------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int]:
        """Alias → version of a registered model (``NotFoundError`` when it does not exist)."""
        name = registered_name(name)
        with self._boundary(f"reading model {name}"):
            found = self._client.get_registered_model(name)
        return {alias: int(v) for alias, v in found.aliases.items()}

    def champions(self, names: list[str] | None = None) -> dict[str, int]:
        """Registered name → champion version, for every sparkhu model (or those in ``names``)."""
        wanted = None if names is None else {registered_name(n) for n in names}
        out: dict[str, int] = {}
        for model in self._registered():
            if (wanted is None or model.name in wanted) and CHAMPION in model.aliases:
                out[model.name] = int(model.aliases[CHAMPION])
        return out

    def _registered(self) -> list[Any]:
        found: list[Any] = []
        token = None
        with self._boundary("listing registered models"):
            while True:
                page = self._client.search_registered_models(
                    filter_string=f"name LIKE '{PREFIX}%'", max_results=1000, page_token=token
                )
                found.extend(page)
                token = page.token
                if not token:
                    return found

    def versions(self, series_or_name: str | None = None) -> list[VersionInfo]:
        """Registered versions (of one model, or of every sparkhu model), newest first per model."""
        if series_or_name is None:
            models = self._registered()
        else:
            name = registered_name(series_or_name)
            with self._boundary(f"reading model {name}"):
                models = [self._client.get_registered_model(name)]
        out: list[VersionInfo] = []
        with self._boundary("listing model versions"):
            for model in sorted(models, key=lambda m: m.name):
                by_version: dict[int, list[str]] = {}
                for alias, v in model.aliases.items():
                    by_version.setdefault(int(v), []).append(alias)
                found = self._client.search_model_versions(f"name='{model.name}'", max_results=10_000)
                for mv in sorted(found, key=lambda v: -int(v.version)):
                    run = self._client.get_run(mv.run_id) if mv.run_id else None
                    series = model.tags.get("sparkhu.series")
                    out.append(
                        VersionInfo(
                            name=model.name,
                            version=int(mv.version),
                            aliases=tuple(sorted(by_version.get(int(mv.version), []))),
                            run_id=mv.run_id or "",
                            series_id=None if series in (None, "None") else series,
                            model=mv.tags.get("sparkhu.kind", ""),
                            metrics=dict(run.data.metrics) if run is not None else {},
                            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                        )
                    )
        return out

    def delete_version(self, name: str, version: int) -> None:
        """Delete one version of ``name`` (retention); :class:`ForecastError` for an aliased version,
        which serving, promotion or rollback may still need."""
        aliases = [alias for alias, v in self.aliases(name).items() if v == int(version)]
        if aliases:
            raise ForecastError(f"model {name} version {version} is {', '.join(aliases)}; it is not deleted")
        with self._boundary(f"deleting {name} version {version}"):
            self._client.delete_model_version(name, str(int(version)))

    def served(
        self, series_or_name: str, alias: str | None = CHAMPION, *, version: int | None = None
    ) -> Served:
        """The model of ``alias`` (or ``version``) with its serving metadata; ``NotFoundError`` if none."""
        name = registered_name(series_or_name)
        with self._boundary(f"loading {name}@{alias if version is None else version}"):
            if version is None:
                if alias is None:
                    raise ForecastError(f"loading {name}: give an alias or a version")
                mv = self._client.get_model_version_by_alias(name, alias)
            else:
                mv = self._client.get_model_version(name, str(int(version)))
            source = mv.source
            if source is None:
                raise ForecastError(f"{name} version {mv.version} names no artifact location to load from")
            repo = get_artifact_repository(source)
            with tempfile.TemporaryDirectory() as tmp:
                local = repo.download_artifacts("", dst_path=None if _is_local(source) else tmp)
                wrapper = mlflow.pyfunc.load_model(local).unwrap_python_model()
        if not isinstance(wrapper, ForecasterModel):
            raise ForecastError(
                f"{name} version {mv.version} is not a sparkhu forecaster ({type(wrapper).__name__})"
            )
        meta = wrapper.meta
        return Served(
            wrapper.forecaster,
            name,
            int(mv.version),
            meta.get("series_id"),
            meta.get("period_s"),
            meta.get("last_ts_us"),
        )

    def load(
        self, series_or_name: str, alias: str | None = CHAMPION, *, version: int | None = None
    ) -> Forecaster:
        """The fitted Forecaster of ``alias`` (default ``champion``) or of ``version``."""
        return self.served(series_or_name, alias, version=version).forecaster

    # ---- the boundary ------------------------------------------------------------------
    @contextmanager
    def _boundary(self, action: str) -> Iterator[None]:
        """Quiet MLflow (its known warnings, its INFO logging) and translate its errors."""
        logger = logging.getLogger("mlflow")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                for message, category in _KNOWN_WARNINGS:
                    warnings.filterwarnings("ignore", message=message, category=category)
                yield
        except MlflowException as exc:
            text = f"{action}: {exc.message}"
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in exc.message.lower():
                raise NotFoundError(text) from exc
            if _looks_unreachable(exc):
                raise BackendUnavailable(self.uri, f"{action}: {exc.message}") from exc
            raise ForecastError(text) from exc
        except (OSError, ConnectionError) as exc:
            raise BackendUnavailable(self.uri, f"{action}: {exc}") from exc
        finally:
            logger.setLevel(level)


def _probe(uri: str, scheme: str, timeout_s: float) -> None:
    """Fail fast, with one clear error, when a store named by URI cannot be reached."""
    parsed = urlparse(uri)
    if scheme in {"http", "https"}:
        port = parsed.port or (443 if scheme == "https" else 80)
        try:
            with socket.create_connection((parsed.hostname or "localhost", port), timeout=timeout_s):
                pass
        except OSError as exc:
            raise BackendUnavailable(
                uri, f"no MLflow tracking server answers ({exc}); start it or fix the URI"
            ) from exc
    elif scheme == "sqlite":
        path = parsed.path[1:] if parsed.path.startswith("//") else parsed.path
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise BackendUnavailable(uri, f"directory {Path(path).parent} does not exist; create it first")


def _is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def _looks_unreachable(exc: MlflowException) -> bool:
    text = exc.message.lower()
    return any(
        word in text for word in ("unable to open", "connection refused", "max retries", "could not connect")
    )


def _short(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
