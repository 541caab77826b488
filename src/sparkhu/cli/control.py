"""Commands of the controller: ``sparkhu policies`` (list, set, delete) and ``sparkhu models history /
promote / rollback`` (the champion history, moves by hand)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli.common import console, open_runtime

ACTOR = "cli"
policies_app = typer.Typer(help="Training policies of the controller (retrain, shadow, promote, roll back).")


def _policies_table(entries: list[Any]) -> Table:
    table = Table(
        "name", "series", "schedule", "drift", "min interval", "max age", "budget/h", "window", "engine",
        "margin", "min points", "back-test", "rollback", "gates train", "from", box=None,
    )  # fmt: skip
    for entry in entries:
        p = entry.policy
        table.add_row(
            p.name, p.series, p.schedule or "", "yes" if p.drift else "no", p.min_interval,
            p.max_model_age or "", str(p.budget_per_hour), p.window, p.engine, f"{p.gate.margin:g}",
            str(p.gate.min_points), "not worse" if p.gate.backtest_not_worse else "-",
            f"{p.rollback_margin:g}", "yes" if p.gate_training else "no", entry.origin,
        )  # fmt: skip
    return table


@policies_app.command("list")
def list_policies(ctx: typer.Context) -> None:
    """The training policies in force: sparkhu.toml's [[policies]] and those set at run time."""
    from sparkhu.control.policies import policy_entries

    with open_runtime(ctx) as runtime:
        entries = policy_entries(runtime.catalog, runtime.settings.policies)
    console.print(_policies_table(entries))
    console.print(f"{len(entries)} polic{'y' if len(entries) == 1 else 'ies'}")


@policies_app.command("set")
def set_policy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Policy name (letters, digits, _ . : -).")],
    series: Annotated[
        str | None, typer.Option(help="Glob over series ids, e.g. 'ampds2/electricity/*'.")
    ] = None,
    schedule: Annotated[str | None, typer.Option(help="Retrain at HH:MM (UTC) or a cron expression.")] = None,
    drift: Annotated[bool | None, typer.Option("--drift/--no-drift", help="Retrain on drift.")] = None,
    min_interval: Annotated[str | None, typer.Option(help="Least time between two retrains (1h).")] = None,
    max_model_age: Annotated[
        str | None, typer.Option(help="Retrain a champion older than this (30d).")
    ] = None,
    budget_per_hour: Annotated[
        int | None, typer.Option(help="Retrains per hour over the policy's series.")
    ] = None,
    window: Annotated[str | None, typer.Option(help="Train on the last span of data (30d).")] = None,
    engine: Annotated[str | None, typer.Option(help="local or spark.")] = None,
    margin: Annotated[
        float | None, typer.Option(help="Promotion margin, a fraction of the champion's MAE.")
    ] = None,
    min_points: Annotated[int | None, typer.Option(help="Live points compared before deciding.")] = None,
    backtest_not_worse: Annotated[
        bool | None, typer.Option("--backtest-not-worse/--backtest-any", help="Require a back-test no worse.")
    ] = None,
    rollback_margin: Annotated[
        float | None, typer.Option(help="Roll back when this much worse live.")
    ] = None,
    gate_training: Annotated[
        bool | None,
        typer.Option("--gate-training/--no-gate-training", help="sparkhu train registers challengers."),
    ] = None,
    from_json: Annotated[
        str | None, typer.Option("--json", help="The whole policy as a JSON object.")
    ] = None,
) -> None:
    """Create or change a policy set at run time (only the fields given change); audited."""
    from sparkhu.control.policies import PolicyEntry, policy_entries
    from sparkhu.control.policies import set_policy as save
    from sparkhu.errors import ConfigError

    fields: dict[str, Any] = {}
    if from_json is not None:
        try:
            fields = json.loads(from_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--json: not a JSON object: {exc}") from exc
        if not isinstance(fields, dict):
            raise ConfigError("--json: expected a JSON object of policy fields")
    given = {
        "series": series, "schedule": schedule, "drift": drift, "min_interval": min_interval,
        "max_model_age": max_model_age, "budget_per_hour": budget_per_hour, "window": window,
        "engine": engine, "rollback_margin": rollback_margin, "gate_training": gate_training,
    }  # fmt: skip
    gate = {"margin": margin, "min_points": min_points, "backtest_not_worse": backtest_not_worse}
    with open_runtime(ctx) as runtime:
        current = {
            e.policy.name: e.policy for e in policy_entries(runtime.catalog, runtime.settings.policies)
        }
        body = current[name].model_dump(mode="json") if name in current else {}
        body.update(fields)
        body.update({k: v for k, v in given.items() if v is not None})
        body["gate"] = {**body.get("gate", {}), **{k: v for k, v in gate.items() if v is not None}}
        body["name"] = name
        policy = save(runtime.catalog, body, actor=ACTOR)
        console.print(_policies_table([PolicyEntry(policy, "catalog")]))
    console.print(f"policy {policy.name!r} saved")


@policies_app.command("delete")
def delete_policy(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Policy name.")]) -> None:
    """Delete a policy set at run time (one of sparkhu.toml is removed there); audited."""
    from sparkhu.control.policies import delete_policy as remove

    with open_runtime(ctx) as runtime:
        remove(runtime.catalog, name, actor=ACTOR, declared=runtime.settings.policies)
    console.print(f"policy {name!r} deleted")


def history(
    ctx: typer.Context,
    series: Annotated[str, typer.Argument(help="Series id source/measurement/field.")],
) -> None:
    """Which version was champion of a series, from when to when, and why."""
    from sparkhu.control import moves

    with open_runtime(ctx) as runtime:
        rows = moves.history(runtime.catalog, series)
    table = Table("version", "since (UTC)", "until (UTC)", "event", "by", "after", "reason", box=None)
    for row in rows:
        table.add_row(
            f"v{row['version']}",
            row["since"].strftime("%Y-%m-%d %H:%M:%S"),
            row["until"].strftime("%Y-%m-%d %H:%M:%S") if row["until"] else "(champion)",
            row["event"],
            row["actor"],
            f"v{row['previous_version']}" if row["previous_version"] else "",
            row["reason"],
        )
    console.print(table)
    console.print(f"{len(rows)} champion(s) of {series}")


def promote(
    ctx: typer.Context,
    series: Annotated[str, typer.Argument(help="Series id source/measurement/field.")],
    version: Annotated[int, typer.Argument(help="The registry version to make champion.", min=1)],
    reason: Annotated[str, typer.Option(help="Why (kept in the history and the audit log).")] = "",
) -> None:
    """Make a version the champion now (history, audit; watched by the controller under a policy)."""
    from sparkhu.app.control import training_policies
    from sparkhu.control import moves

    with open_runtime(ctx) as runtime:
        cycle = moves.promote(
            runtime.catalog, runtime.registry, series, version, actor=ACTOR, reason=reason,
            policies=training_policies(runtime),
        )  # fmt: skip
    console.print(f"{series}: version {version} is champion (cycle #{cycle})")


def rollback(
    ctx: typer.Context,
    series: Annotated[str, typer.Argument(help="Series id source/measurement/field.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the history and the audit log).")] = "",
) -> None:
    """Bring back the champion before the current one (one step back)."""
    from sparkhu.control import moves
    from sparkhu.forecast.registry import CHAMPION

    with open_runtime(ctx) as runtime:
        moves.rollback(runtime.catalog, runtime.registry, series, actor=ACTOR, reason=reason)
        now = runtime.registry.aliases(series)[CHAMPION]
    console.print(f"{series}: rolled back to version {now}")


def attach(models_app: typer.Typer) -> None:
    """Add history, promote and rollback to ``sparkhu models``."""
    models_app.command("history")(history)
    models_app.command("promote")(promote)
    models_app.command("rollback")(rollback)
