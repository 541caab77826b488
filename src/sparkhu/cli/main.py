"""The ``sparkhu`` command line: thin commands that parse, call a service and print.

Every :class:`~sparkhu.errors.SparkhuError` ends the command with one red line and exit
status 2 (never a traceback); a usage error (no command, an unknown one, a missing argument)
prints click's usage message and exits 2; ``--debug`` shows the traceback of unexpected errors.

Start-up is kept short: this module and the command modules import only typer and rich at
the top; each command imports the layers it uses when it runs (``sparkhu --help`` loads no
pyarrow, pandas, SQLAlchemy or MLflow).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sparkhu.cli import airflow, connectors, control, data, meta, models, online, platform, retention, spark
from sparkhu.cli.common import State, err_console

PROG = "sparkhu"
DEFAULT_TOML = "sparkhu.toml"  # sparkhu.config.DEFAULT_TOML, spelt here so --help imports no settings

app = typer.Typer(
    name=PROG,
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
app.add_typer(meta.meta_app, name="meta")
app.add_typer(meta.views_app, name="feature-views")
app.add_typer(connectors.connectors_app, name="connectors")
app.command("demo")(platform.demo)
app.command("up")(platform.up)
app.command("serve")(platform.serve)
app.command("ingest")(data.ingest)
app.command("replay")(data.replay)
app.command("series")(data.series)
app.command("predictions")(data.predictions)
app.command("runs")(data.runs)
app.command("lineage")(meta.lineage)
app.command("train")(models.train)
app.command("predict")(models.predict)
control.attach(models.models_app)
app.add_typer(models.models_app, name="models")
app.add_typer(control.policies_app, name="policies")
app.command("scores")(online.scores)
app.command("drift")(online.drift)
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
    from sparkhu.config import Settings
    from sparkhu.errors import SparkhuError

    overrides = {"home": str(home)} if home is not None else {}
    if config != Path(DEFAULT_TOML) and not config.exists():
        raise SparkhuError(f"--config {config}: no such file")
    ctx.obj = State(settings=Settings.load(toml_path=config, overrides=overrides), debug=debug)


def _usage_error(exc: BaseException) -> int | None:
    """Print a click usage error (``sparkhu seris``, a missing argument) as click does — the usage line,
    a hint and the message; the help for a bare ``sparkhu`` or group — and return its exit status (2);
    ``None`` when ``exc`` is no click error. Duck-typed: typer carries its own copy of click."""
    show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
    if not callable(show) or not isinstance(exit_code, int):
        return None
    show(file=err_console.file)
    return exit_code


def run(argv: list[str] | None = None) -> None:
    """Entry point of the ``sparkhu`` script: errors become one line and an exit status."""
    from rich.text import Text

    from sparkhu.errors import SparkhuError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # Not standalone: usage errors come back here and are printed the same way for every command.
        result = app(args=args, prog_name=PROG, standalone_mode=False)
        if isinstance(result, int) and result:  # typer.Exit(code) in non-standalone mode
            sys.exit(result)
    except SparkhuError as exc:
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        code = _usage_error(exc)
        if code is not None:
            sys.exit(code)
        if type(exc).__name__ == "Abort":  # click's Abort (Ctrl-C at a prompt, EOF)
            err_console.print("aborted")
            sys.exit(1)
        if debug:
            raise
        err_console.print(
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
