"""The Spark engine: per-series functions through ``groupBy(...).applyInPandas`` on a Spark cluster.

The same pure functions the local engine runs, the same results. :meth:`SparkEngine.map_inputs`
(the pipeline runner's entry point, one input per chunk of series cut by
:meth:`SparkEngine.split`) ships each input pickled in one row (``idx``, ``chunk``,
``payload``), groups the rows into contiguous chunks of about equal size (``sizes``), and runs
``fn`` in the Python workers with :func:`~sparkhu.engine.base.call_inputs`, exactly as the
local pool does; results come back pickled and in the inputs' order. :meth:`SparkEngine.map_series`
ships points compactly (one row per point: ``series_id``, ``ts`` in µs, ``value``, ``seq``)
and groups them by ``series_id``; given a :class:`LakeSlice` instead of a table it reads the
lake's Parquet files directly in Spark (:func:`read_lake`, on the files the lake names with
:meth:`~sparkhu.storage.lake.Lake.file_uris`), without passing through the driver.

``uri`` is ``local[N]``, ``local[*]`` or ``spark://host:port[,host:port]`` (standalone). One
``SparkSession`` per engine, created on first use and kept until :meth:`SparkEngine.close`:
start-up costs seconds. PySpark allows one active session per process, so open one Spark
engine at a time. An unreachable master raises :class:`~sparkhu.errors.BackendUnavailable`
within ``connect_timeout_s``; a master without free workers within ``executor_timeout_s``;
missing Java (or PySpark) raises :class:`~sparkhu.errors.ConfigError`.

>>> SparkEngine("local[2]")
SparkEngine('local[2]')
>>> SparkEngine("yarn")
Traceback (most recent call last):
...
sparkhu.errors.ConfigError: engine.uri: 'yarn' is not a Spark master; expected local[N], local[*] or spark://host:port
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.engine.base import (
    CallFailure,
    Engine,
    MapResult,
    SeriesFn,
    assemble,
    balanced_edges,
    call_inputs,
    call_series,
    describe,
    pickle_task,
)
from sparkhu.errors import BackendUnavailable, ConfigError, InputError, PipelineError
from sparkhu.series import conform, series_runs
from sparkhu.storage.lake import Lake
from sparkhu.timeaxis import from_us_array, to_us

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_LOCAL_RE = re.compile(r"^local\[(\d+|\*)\]$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_INPUT_SCHEMA = "idx long, payload binary"
_SERIES_SCHEMA = "series_id string, payload binary, error string"


@dataclass(frozen=True)
class LakeSlice:
    """Points of one lake dataset for :meth:`SparkEngine.map_series`, read by Spark itself."""

    lake: Lake
    zone: str
    dataset: str
    start: datetime | None = None
    end: datetime | None = None
    series: Sequence[str] | None = None


class SparkEngine(Engine):
    """Map series functions on Spark (``local[N]`` or a standalone cluster).

    ``conf``: extra Spark settings (they win over the defaults below); ``env``: the
    environment the Spark JVM starts with (default: this process's), read to find Java;
    ``chunks_per_core``: chunks of inputs per core in :meth:`map_inputs`.
    """

    def __init__(
        self,
        uri: str,
        *,
        app_name: str = "sparkhu",
        conf: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        chunks_per_core: int = 4,
        connect_timeout_s: float = 5.0,
        executor_timeout_s: float = 60.0,
    ) -> None:
        self.uri = uri
        self.masters = _parse_uri(uri)
        if chunks_per_core < 1:
            raise ConfigError(f"chunks_per_core must be >= 1, got {chunks_per_core}")
        self.app_name = app_name
        self.conf = dict(conf or {})
        self.env = env
        self.chunks_per_core = chunks_per_core
        self.connect_timeout_s = connect_timeout_s
        self.executor_timeout_s = executor_timeout_s
        self._session: SparkSession | None = None

    def __repr__(self) -> str:
        return f"SparkEngine({self.uri!r})"

    # ------------------------------------------------------------------ the session

    @property
    def session(self) -> SparkSession:
        """The engine's ``SparkSession``, started on first use (seconds) and then reused."""
        if self._session is None or self._session.sparkContext._jsc is None:
            self._session = self._start()
        return self._session

    @property
    def cores(self) -> int:
        """Cores Spark runs tasks on (its default parallelism)."""
        return int(self.session.sparkContext.defaultParallelism)

    def close(self) -> None:
        """Stop the session (a later call starts a new one)."""
        if self._session is not None:
            self._session.stop()
            self._session = None

    def _start(self) -> SparkSession:
        _check_java(os.environ if self.env is None else self.env)
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ConfigError("the Spark engine needs PySpark: install sparkhu[spark]") from exc
        for host, port in self.masters:
            _check_reachable(self.uri, host, port, self.connect_timeout_s)
        builder = SparkSession.builder.master(self.uri).appName(self.app_name)
        for key, value in self._defaults().items():
            builder = builder.config(key, value)
        try:
            with _quiet():
                session = builder.getOrCreate()
        except Exception as exc:
            raise BackendUnavailable(self.uri, f"cannot start a Spark session ({exc})") from exc
        context = session.sparkContext
        if context.master != self.uri:
            raise ConfigError(
                f"a Spark session with master {context.master} is already active in this process; "
                f"close its engine before opening one on {self.uri}"
            )
        context.pythonExec = sys.executable  # workers run this interpreter (the venv's)
        if self.masters:
            self._await_executors(session)
        return session

    def _defaults(self) -> dict[str, str]:
        local = not self.masters or all(host in _LOOPBACK for host, _ in self.masters)
        cores = 2
        match = _LOCAL_RE.match(self.uri)
        if match and match.group(1) != "*":
            cores = int(match.group(1))
        elif match:
            cores = os.cpu_count() or 2
        conf = {
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
            "spark.sql.shuffle.partitions": str(2 * cores),
            "spark.sql.adaptive.enabled": "false",  # keep the chunks apart; they are balanced already
            "spark.sql.session.timeZone": "UTC",
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
            "spark.network.timeout": "60s",
            "spark.log.level": "ERROR",
            "spark.ui.showConsoleProgress": "false",  # our CLI draws its own progress
        }
        if local:
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
        return {**conf, **self.conf}

    def _await_executors(self, session: SparkSession) -> None:
        """Block until the cluster gave the application at least one executor."""
        tracker = session.sparkContext._jsc.sc().statusTracker()
        deadline = time.monotonic() + self.executor_timeout_s
        while len(tracker.getExecutorInfos()) < 2:  # the driver counts as one
            if time.monotonic() > deadline:
                session.stop()
                raise BackendUnavailable(
                    self.uri,
                    f"the master accepted the application but no executor started within "
                    f"{self.executor_timeout_s:g} s; are workers registered with free cores and memory?",
                )
            time.sleep(0.2)

    # ------------------------------------------------------------------ the contract

    def map_inputs(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Any],
        params: Mapping[str, Any],
        *,
        sizes: Sequence[int] | None = None,
    ) -> list[Any]:
        """See :meth:`Engine.map_inputs`: contiguous chunks of inputs, one ``applyInPandas`` group each."""
        fn_bytes, params_bytes = pickle_task(fn, dict(params))
        if not inputs:
            return []
        weights = list(sizes) if sizes is not None else [1] * len(inputs)
        edges = balanced_edges(weights, self.cores * self.chunks_per_core)
        chunk = np.repeat(np.arange(len(edges) - 1), np.diff(edges))
        try:
            payload = [pickle.dumps(inp, protocol=5) for inp in inputs]
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise PipelineError(f"inputs of {_name(fn)} cannot be sent to Spark workers ({exc})") from exc
        table = pa.table({"idx": np.arange(len(inputs)), "chunk": chunk, "payload": payload})

        def run(frame: pd.DataFrame) -> pd.DataFrame:
            return _run_inputs(fn_bytes, params_bytes, frame)

        try:
            with _quiet():
                frame = self.session.createDataFrame(table)
                out = frame.groupBy("chunk").applyInPandas(run, _INPUT_SCHEMA).toArrow()
        except Exception as exc:
            if isinstance(exc, ConfigError | BackendUnavailable):
                raise
            reason = f"Spark job failed ({_first_line(exc)})"
            return [CallFailure(reason)] * len(inputs)
        results: list[Any] = [CallFailure("no result came back from Spark")] * len(inputs)
        for idx, blob in zip(out.column("idx").to_pylist(), out.column("payload").to_pylist(), strict=True):
            results[idx] = pickle.loads(blob)
        return results

    def split(self, sizes: Sequence[int]) -> list[tuple[int, int]]:
        """See :meth:`Engine.split`: ``chunks_per_core`` runs of about equal rows per Spark core."""
        if not len(sizes):
            return []
        return list(itertools.pairwise(balanced_edges(sizes, self.cores * self.chunks_per_core)))

    def map_series(self, fn: SeriesFn, table: pa.Table | LakeSlice, **kwargs: Any) -> MapResult:
        """See :meth:`Engine.map_series`; ``table`` may also be a :class:`LakeSlice` read by Spark."""
        fn_bytes, kwargs_bytes = pickle_task(fn, kwargs)
        rows = None if isinstance(table, LakeSlice) else _point_rows(table)
        with _quiet():
            frame = self._series_frame(table) if rows is None else self.session.createDataFrame(rows)

        def run(group: pd.DataFrame) -> pd.DataFrame:
            return _run_series(fn_bytes, kwargs_bytes, group)

        try:
            with _quiet():
                out = frame.groupBy("series_id").applyInPandas(run, _SERIES_SCHEMA).toArrow()
        except Exception as exc:
            raise PipelineError(f"Spark job of {_name(fn)} on {self.uri} failed: {_first_line(exc)}") from exc
        out = out.take(pc.sort_indices(out, [("series_id", "ascending")]))
        parts, failures = [], []
        for sid, blob, error in zip(*(out.column(c).to_pylist() for c in ("series_id", "payload", "error")),
                                    strict=True):  # fmt: skip
            if error is not None:
                failures.append((sid, error))
            else:
                parts.append((sid, pickle.loads(blob)))
        try:
            result = assemble(parts)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise PipelineError(
                f"results of {_name(fn)} cannot be combined into one table ({exc}); "
                "return frames with the same columns and types for every series"
            ) from exc
        return MapResult(result, failures)

    def _series_frame(self, source: LakeSlice) -> DataFrame:
        frame = read_lake(
            self.session, source.lake, source.zone, source.dataset,
            start=source.start, end=source.end, series=source.series,
        )  # fmt: skip
        return frame.selectExpr("series_id", "unix_micros(ts) AS ts", "value", "0L AS seq")


# ---------------------------------------------------------------------- the lake, read by Spark


def read_lake(
    session: SparkSession,
    lake: Lake,
    zone: str,
    dataset: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    series: Sequence[str] | None = None,
    dedup: bool = True,
) -> DataFrame:
    """A Spark DataFrame (``series_id``, ``ts``, ``value``) over the Parquet files of ``zone/dataset``.

    Only the files :meth:`~sparkhu.storage.lake.Lake.file_uris` names for ``[start, end)``
    are opened (the lake's own pruning, either layout); rows are filtered to the range and
    ``series``. With ``dedup``, of several points with the same (series_id, ts) the one of
    the newest file (the greatest file name) wins, as in :meth:`~sparkhu.storage.lake.Lake.read`.
    An empty selection gives an empty frame.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    uris = lake.file_uris(zone, dataset, start=start, end=end)
    schema = "series_id string, ts timestamp, value double"
    if not uris:
        return session.createDataFrame([], schema)
    frame = session.read.parquet(*uris).select(
        F.col("series_id").cast("string").alias("series_id"),
        F.col("ts").cast("timestamp").alias("ts"),
        F.col("value").cast("double").alias("value"),
        F.col("_metadata.file_name").alias("_file"),
    )
    micros = F.unix_micros(F.col("ts"))
    if start is not None:
        frame = frame.where(micros >= F.lit(to_us(start)))
    if end is not None:
        frame = frame.where(micros < F.lit(to_us(end)))
    if series is not None:
        frame = frame.where(F.col("series_id").isin([series] if isinstance(series, str) else list(series)))
    if dedup:
        newest = Window.partitionBy("series_id", "ts").orderBy(F.col("_file").desc())
        frame = frame.withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n")
    return frame.drop("_file")


# ---------------------------------------------------------------------- shipping and worker side


def _point_rows(table: pa.Table) -> pa.Table:
    """One row per point, ids as strings, ``ts`` in µs and ``seq`` the (series, ts) order with ties kept."""
    if not isinstance(table, pa.Table):
        raise PipelineError(f"expected a pyarrow.Table of points or a LakeSlice, got {type(table).__name__}")
    try:
        table = series_runs(conform(table)).table
    except (InputError, pa.ArrowException, TypeError, ValueError) as exc:
        raise PipelineError(f"table is not a table of points: {exc}") from exc
    ids = table.column("series_id").cast(pa.string())
    ts = table.column("ts").cast(pa.int64())
    seq = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return pa.table({"series_id": ids, "ts": ts, "value": table.column("value"), "seq": seq})


def _run_inputs(fn_bytes: bytes, params_bytes: bytes, frame: pd.DataFrame) -> pd.DataFrame:
    """Worker side of :meth:`SparkEngine.map_inputs`: one chunk of pickled inputs."""
    frame = frame.sort_values("idx")
    try:
        fn, params = pickle.loads(fn_bytes), pickle.loads(params_bytes)
        inputs: Iterator[Any] = (pickle.loads(blob) for blob in frame["payload"])
        results = call_inputs(fn, params, inputs)
    except Exception as exc:
        failure = CallFailure(f"cannot load the task in a Spark worker ({describe(exc)})")
        results = [failure] * len(frame)
    payload = [pickle.dumps(r, protocol=5) for r in results]
    return pd.DataFrame({"idx": frame["idx"].to_numpy(), "payload": payload})


def _run_series(fn_bytes: bytes, kwargs_bytes: bytes, group: pd.DataFrame) -> pd.DataFrame:
    """Worker side of :meth:`SparkEngine.map_series`: one series, rebuilt as the local engine builds it."""
    sid = str(group["series_id"].iloc[0])
    group = group.sort_values(["ts", "seq"], kind="stable")
    points = pa.table(
        {
            "ts": from_us_array(group["ts"].to_numpy(dtype="int64")),
            "value": pa.array(group["value"].to_numpy(dtype="float64"), from_pandas=True),
        }
    ).to_pandas()
    try:
        fn, kwargs = pickle.loads(fn_bytes), pickle.loads(kwargs_bytes)
    except Exception as exc:
        reason = f"cannot load the series function in a Spark worker ({describe(exc)})"
        return pd.DataFrame({"series_id": [sid], "payload": [None], "error": [reason]})
    [(_, result, error)] = call_series(fn, kwargs, [(sid, points)])
    payload = None if error is not None else pickle.dumps(result, protocol=5)
    return pd.DataFrame({"series_id": [sid], "payload": [payload], "error": [error]})


# ---------------------------------------------------------------------- checks


@contextmanager
def _quiet() -> Iterator[None]:
    """PySpark warns on every pandas conversion that pandas 3 is not yet fully supported."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
        )
        yield


def _parse_uri(uri: str) -> list[tuple[str, int]]:
    """``[]`` for ``local[N]``; the (host, port) of each master of ``spark://h:p[,h:p]``."""
    if not isinstance(uri, str):
        raise ConfigError(f"engine.uri must be a string, got {uri!r}")
    if _LOCAL_RE.match(uri):
        if uri == "local[0]":
            raise ConfigError("engine.uri: local[0] has no cores; use local[N] with N >= 1 or local[*]")
        return []
    if not uri.startswith("spark://"):
        raise ConfigError(
            f"engine.uri: {uri!r} is not a Spark master; expected local[N], local[*] or spark://host:port"
        )
    masters = []
    for part in uri.removeprefix("spark://").split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"engine.uri: {uri!r}: {part!r} is not host:port (e.g. spark://master:7077)")
        masters.append((host.strip("[]"), int(port)))
    return masters


def _check_reachable(uri: str, host: str, port: int, timeout_s: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        raise BackendUnavailable(
            uri, f"no Spark master answers at {host}:{port} ({exc}); start it or fix engine.uri"
        ) from exc


def _check_java(env: Mapping[str, str]) -> None:
    """Spark's launcher uses ``$JAVA_HOME/bin/java``, else ``java`` on ``PATH``."""
    home = env.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java", path=env.get("PATH"))
    if not java or not os.access(java, os.X_OK):
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH"
        raise ConfigError(
            f"the Spark engine needs Java 17 or newer: {where}; install a JDK/JRE "
            "(e.g. the openjdk-17-jre-headless package) or set JAVA_HOME"
        )


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", fn))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^\w*(Error|Exception)\b", ln)]
    return (errors[-1] if errors else lines[0] if lines else type(exc).__name__)[:500]
