"""Write the Airflow DAG files of the registered builders: what ``sparkhu airflow dags`` runs.

:func:`generate` resolves the datasets, asks each builder of
:data:`~sparkhu.orchestrate.DAG_BUILDERS` for its specs and writes one file per DAG into the
output folder (atomically; files an earlier generation wrote that are no longer generated are
removed, other files are left alone). :func:`launch` decides how the tasks call sparkhu: the
command (``[airflow] sparkhu``, else the ``sparkhu`` script beside this Python) with the home
and settings file of this generation, so the workers run on the same backends.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sparkhu.app.runtime import Runtime
from sparkhu.errors import ConfigError
from sparkhu.orchestrate.base import BuildContext, DagSpec, GroupBy
from sparkhu.orchestrate.render import HEADER, Launch, Operator, render

MARK = HEADER.split("(", 1)[0]
"""How a generated file begins: the files of an earlier generation are recognised by it."""


@dataclass(frozen=True)
class Generated:
    """One written DAG file."""

    path: Path
    spec: DagSpec


def datasets_of(runtime: Runtime, given: Sequence[str] = ()) -> list[str]:
    """``given``, else the datasets of ``[[sources]]``, else those in the lake's raw zone."""
    if given:
        return list(dict.fromkeys(given))
    configured = sorted({spec.dataset for spec in runtime.settings.sources})
    found = configured or sorted(name for _zone, name in runtime.lake.datasets("raw"))
    if not found:
        raise ConfigError(
            "--dataset: no dataset to generate DAGs for: configure [[sources]], ingest some data or name one"
        )
    return found


def launch(
    runtime: Runtime,
    operator: Operator,
    *,
    config_path: Path | None = None,
    sparkhu: str | None = None,
) -> Launch:
    """How the generated tasks run sparkhu (see the module docstring); ``sparkhu`` overrides
    ``[airflow] sparkhu``. A ``spark-submit`` launch needs a Spark master in ``[engine] uri``."""
    settings = runtime.settings
    options = ["--home", str(settings.home)]
    if config_path is not None and config_path.exists():
        options += ["--config", str(config_path.absolute())]
    if operator == "inprocess":
        return Launch(operator, tuple(options))
    python = sys.executable
    if operator == "spark-submit":
        from sparkhu.engine import engine_scheme

        master = settings.engine.uri
        if engine_scheme(master) != "spark":
            raise ConfigError(
                f"engine.uri: the spark-submit operator submits to a Spark master, but engine.uri is "
                f"{master!r}; set it to local[N] or spark://host:port"
            )
        submit = _spark_submit(shlex.split(settings.airflow.spark_submit))
        launcher = Path(__file__).resolve().parents[1] / "cli" / "submit" / "__main__.py"
        # sparkhu in the driver maps over series with the Spark engine of the same master
        engine = f"SPARKHU_ENGINE__URI={master}"
        submit = [*submit[:-1], engine, submit[-1]] if submit[0] == "env" else ["env", engine, *submit]
        prefix = [
            *submit,
            "--master",
            master,
            "--conf",
            f"spark.pyspark.python={python}",
            "--conf",
            f"spark.pyspark.driver.python={python}",
            str(launcher),
        ]
        return Launch(operator, (*prefix, *options))
    command = shlex.split(sparkhu if sparkhu is not None else settings.airflow.sparkhu)
    if not command:
        script = Path(python).parent / "sparkhu"
        command = [str(script)] if script.exists() else [python, "-m", "sparkhu.cli"]
    return Launch(operator, (*command, *options))


def generate(
    runtime: Runtime,
    out: Path,
    *,
    builders: Sequence[str] | None = None,
    datasets: Sequence[str] = (),
    group_by: GroupBy = "task",
    operator: Operator | None = None,
    config_path: Path | None = None,
    sparkhu: str | None = None,
) -> list[Generated]:
    """Write the DAG files of ``builders`` (default: every registered one) into ``out``."""
    from sparkhu.orchestrate import DAG_BUILDERS

    chosen = list(builders) if builders else DAG_BUILDERS.keys()
    how = launch(
        runtime, operator or runtime.settings.airflow.operator, config_path=config_path, sparkhu=sparkhu
    )
    ctx = BuildContext(runtime.settings, runtime, datasets_of(runtime, datasets), group_by)
    specs = [spec for name in chosen for spec in DAG_BUILDERS.get(name)(ctx)]
    ids = [s.dag_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"two generated DAGs share an id: {', '.join(sorted(ids))}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for spec in specs:
            path = out / f"{spec.dag_id}.py"
            _write_atomic(path, render(spec, how))
            written.append(Generated(path, spec))
        keep = {g.path.name for g in written}
        for old in out.glob("*.py"):
            if old.name not in keep and _generated(old):
                old.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the DAG files ({exc})") from exc
    return written


def _generated(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            return f.read(len(MARK)) == MARK
    except (OSError, UnicodeDecodeError):
        return False


def _spark_submit(command: list[str]) -> list[str]:
    """The bare default ``spark-submit`` is the one of the pyspark installed beside sparkhu, named by
    its path with its ``SPARK_HOME`` (the script alone looks for Spark with whatever ``python3`` the
    worker's PATH has); another command is used as given."""
    if command != ["spark-submit"]:
        return command
    spec = importlib.util.find_spec("pyspark")  # located, not imported: generation starts no JVM
    if spec is None or spec.origin is None:
        return command
    spark_home = Path(spec.origin).parent
    return ["env", f"SPARK_HOME={spark_home}", str(spark_home / "bin" / "spark-submit")]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
