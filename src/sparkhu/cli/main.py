"""The ``sparkhu`` command line: thin commands that parse, call a service and print.

Every :class:`~sparkhu.errors.SparkhuError` ends the command with one red line and exit
status 2 (never a traceback); ``--debug`` shows the traceback of unexpected errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from sparkhu.cli import airflow, connectors, data, models, platform, retention, spark
from sparkhu.cli.common import State
from sparkhu.config import DEFAULT_TOML, Settings
from sparkhu.errors import SparkhuError

app = typer.Typer(
    name="sparkhu",
    help="Many time series on autopilot: ingest, lake, cleaning, forecasting, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.lake_app, name="lake")
app.add_typer(data.pipeline_app, name="pipeline")
app.add_typer(retention.retention_app, name="retention")
app.add_typer(airflow.airflow_app, name="airflow")
app.add_typer(spark.spark_app, name="spark")
app.add_typer(connectors.connectors_app, name="connectors")
app.command("demo")(platform.demo)
app.command("up")(platform.up)
app.command("serve")(platform.serve)
app.command("ingest")(data.ingest)
app.command("replay")(data.replay)
app.command("series")(data.series)
app.command("predictions")(data.predictions)
app.command("runs")(data.runs)
app.command("train")(models.train)
app.command("predict")(models.predict)
app.command("models")(models.models)
app.command("config")(platform.show_config)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Settings file (TOML).", show_default=True)
    ] = Path(DEFAULT_TOML),
    home: Annotated[
        Path | None, typer.Option("--home", help="Home directory of the embedded backends.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
) -> None:
    """Settings come from --config, then SPARKHU_* variables, then --home."""
    overrides = {"home": str(home)} if home is not None else {}
    if config != Path(DEFAULT_TOML) and not config.exists():
        raise SparkhuError(f"--config {config}: no such file")
    ctx.obj = State(settings=Settings.load(toml_path=config, overrides=overrides), debug=debug)


def run(argv: list[str] | None = None) -> None:
    """Entry point of the ``sparkhu`` script: errors become one line and an exit status."""
    err = Console(stderr=True, highlight=False)
    debug = "--debug" in (argv if argv is not None else sys.argv)
    try:
        # Typer (with its own copy of click) reports usage errors, --help and typer.Exit itself and exits.
        app(args=argv, standalone_mode=True)
    except SparkhuError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        err.print(
            Text.assemble(
                ("internal error: ", "bold red"),
                f"{type(exc).__name__}: {exc}",
                " (run again with --debug for details)",
            ),
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    run()
