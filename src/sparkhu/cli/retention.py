"""``sparkhu retention``: policies, the dry-run plan, apply, restore, undo, legal holds, the audit log."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli.common import console, state

retention_app = typer.Typer(
    help="Retention: policies, dry-run plans, apply, restore, undo.", no_args_is_help=True
)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@retention_app.command("policies")
def policies_cmd(
    ctx: typer.Context,
    set_: Annotated[str | None, typer.Option("--set", help="Store a policy given as JSON.")] = None,
    delete: Annotated[str | None, typer.Option(help="Remove the stored policy of this name.")] = None,
) -> None:
    """List the policies in force and the legal holds; set or delete a stored one."""
    from sparkhu.app.retention import retention_context
    from sparkhu.app.runtime import Runtime
    from sparkhu.retention import policies

    with Runtime(state(ctx).settings) as runtime:
        rctx = retention_context(runtime, registry=False)
        if set_ is not None:
            policies.set_policy(rctx, _json(set_, "--set"), actor="cli")
        if delete is not None:
            policies.delete_policy(rctx, delete, actor="cli")
        table = Table(
            "name", "target", "match", "series", "action", "keep", "quota", "levels", title="policies"
        )
        for p in policies.policies(rctx):
            keep = (
                " ".join(
                    x
                    for x in (
                        f"{p.keep_months} mo" if p.keep_months else "",
                        f"{p.keep_days:g} d" if p.keep_days else "",
                    )
                    if x
                )
                or "-"
            )
            if p.start_date:
                keep += f" (from {p.start_date})"
            table.add_row(
                p.name,
                p.target,
                p.match,
                p.series,
                p.action,
                keep,
                _size(p.max_bytes) if p.max_bytes is not None else "",
                ", ".join(f"{lv.every_s}s:{lv.keep_days:g}d" for lv in p.levels),
            )
        console.print(table)
        holds = policies.holds(rctx)
        if holds:
            held = Table("hold", "target", "match", "series", "reason", title="legal holds")
            for h in holds:
                held.add_row(h.name, h.target, h.match, h.series, h.reason)
            console.print(held)


@retention_app.command("plan")
def plan_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Make the dry-run plan (nothing is touched) and print it; `apply --plan ID` executes it."""
    from sparkhu.app.retention import retention_context
    from sparkhu.app.runtime import Runtime
    from sparkhu.retention.plan import make_plan

    with Runtime(state(ctx).settings) as runtime:
        plan = make_plan(retention_context(runtime))
    if as_json:
        console.print_json(json.dumps(plan.to_dict()))
        return
    _print_plan(plan)


def _print_plan(plan: Any) -> None:
    table = Table(
        "item", "policy", "what", "action", "mode", "rows", "bytes", title=f"plan {plan.id} (dry run)"
    )
    for i in plan.items:
        what = "/".join(x for x in (i.target, i.name, i.key) if x)
        if i.action == "downsample":
            what += f" → {i.detail['every_s']}s ({len(i.detail['days'])} day(s))"
        if i.mode == "topic-config":
            what += " " + ", ".join(f"{k} {i.detail['was'][k]} → {v}" for k, v in i.detail["set"].items())
        table.add_row(i.id, i.policy, what, i.action, i.mode, str(i.rows), _size(i.bytes))
    console.print(table)
    console.print(
        f"{len(plan.items)} item(s): {plan.rows} rows, {_size(plan.bytes)}, {plan.partitions} partition(s)"
    )
    for p in plan.protected[:20]:
        console.print(f"[yellow]kept[/] {p['what']} ({p['policy']}): {p['reason']}")
    if len(plan.protected) > 20:
        console.print(f"… and {len(plan.protected) - 20} more kept")


@retention_app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    plan_id: Annotated[
        str | None, typer.Option("--plan", help="Execute this stored plan (default: plan now).")
    ] = None,
) -> None:
    """Execute a plan (by default: finish any interrupted run, then plan and apply a new pass)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sparkhu.app.retention import retention_context
    from sparkhu.app.runtime import Runtime
    from sparkhu.retention.apply import apply_plan, exclusive, open_runs
    from sparkhu.retention.plan import load_plan, make_plan

    with Runtime(state(ctx).settings) as runtime:
        rctx = retention_context(runtime)
        # the whole command (interrupted runs, planning, applying) is one pass: one at a time per home
        with exclusive(rctx, "cli"):
            plans = [load_plan(rctx, plan_id)] if plan_id else [load_plan(rctx, p) for p in open_runs(rctx)]
            if not plan_id:
                plans.append(make_plan(rctx))
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                for plan in plans:
                    task = bar.add_task(f"plan {plan.id}", total=len(plan.items))

                    def advance(done: int, _total: int, task_id: Any = task) -> None:
                        bar.update(task_id, completed=done)

                    result = apply_plan(rctx, plan, actor="cli", progress=advance)
                    console.print(
                        f"run {result.run_id}: {len(result.done)} done, {len(result.skipped)} skipped, "
                        f"{result.rows} rows, {_size(result.bytes)} freed, {result.archived} archived "
                        f"({result.seconds:.1f} s); undo with `sparkhu retention undo {result.run_id}`"
                    )
                    for skipped in result.skipped[:10]:
                        console.print(f"[yellow]skipped[/] {skipped['item']}: {skipped['reason']}")


@retention_app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    zone: Annotated[str | None, typer.Option(help="Only archives of this zone.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only archives of this dataset.")] = None,
    start: Annotated[str | None, typer.Option(help="Only archives with rows from this time on.")] = None,
    end: Annotated[str | None, typer.Option(help="Only archives with rows before this time.")] = None,
) -> None:
    """Put archived rows back into the lake."""
    from sparkhu.app.retention import retention_context
    from sparkhu.app.runtime import Runtime
    from sparkhu.retention import archive
    from sparkhu.timeaxis import parse_time

    with Runtime(state(ctx).settings) as runtime:
        rctx = retention_context(runtime, registry=False)
        count, rows = archive.restore(
            rctx,
            zone=zone,
            dataset=dataset,
            start=parse_time(start, "--start"),
            end=parse_time(end, "--end"),
            actor="cli",
        )
    console.print(f"restored {rows} rows from {count} archive(s)")


@retention_app.command("undo")
def undo_cmd(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="The run to undo (r<µs>-<hex>).")]
) -> None:
    """Bring back the lake files a run deleted (within the soft-delete window)."""
    from sparkhu.app.retention import retention_context
    from sparkhu.app.runtime import Runtime
    from sparkhu.retention.apply import undo

    with Runtime(state(ctx).settings) as runtime:
        moved = undo(retention_context(runtime, registry=False), run_id, actor="cli")
    console.print(f"run {run_id}: {moved} file(s) back in the lake")


@retention_app.command("hold")
def hold_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the hold.")],
    target: Annotated[str, typer.Option(help="Lake zone, bus, predictions.raw... or *.")] = "*",
    match: Annotated[str, typer.Option(help="Datasets/topics (glob).")] = "*",
    series: Annotated[str, typer.Option(help="Series (glob).")] = "*",
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    release: Annotated[bool, typer.Option("--release", help="Lift the hold instead.")] = False,
) -> None:
    """Place (or --release) a legal hold: what it pins is never deleted or archived."""
    from sparkhu.app.retention import retention_context
    from sparkhu.app.runtime import Runtime
    from sparkhu.retention import policies

    with Runtime(state(ctx).settings) as runtime:
        rctx = retention_context(runtime, registry=False)
        if release:
            policies.release_hold(rctx, name, actor="cli")
            console.print(f"hold {name} lifted")
        else:
            body = {"name": name, "target": target, "match": match, "series": series, "reason": reason}
            policies.set_hold(rctx, body, actor="cli")
            console.print(f"hold {name} placed")


@retention_app.command("audit")
def audit_cmd(ctx: typer.Context, limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """The audit log of retention (newest first)."""
    from sparkhu.app.runtime import Runtime

    with Runtime(state(ctx).settings) as runtime:
        entries = runtime.catalog.audit_log(limit=limit)
    table = Table("at", "actor", "action", "target", "detail", title="audit log")
    for e in entries:
        table.add_row(
            f"{e['at']:%Y-%m-%d %H:%M:%S}",
            e["actor"],
            e["action"],
            e["target"],
            json.dumps({k: v for k, v in e["detail"].items() if k != "items"})[:100],
        )
    console.print(table)


def _json(text: str, option: str) -> dict[str, Any]:
    from sparkhu.errors import InputError

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"not JSON: {exc}", field=option) from exc
    if not isinstance(value, dict):
        raise InputError("expected a JSON object of policy fields", field=option)
    return value


__all__ = ["retention_app"]
