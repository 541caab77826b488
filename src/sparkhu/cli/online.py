"""Commands over the online evaluation: ``scores SERIES`` (the live errors) and ``drift [SERIES]``.

Both read what the online predictor wrote (:mod:`sparkhu.online.scoring`,
:mod:`sparkhu.online.drift`); a malformed argument is one line naming it, exit status 2.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli.common import console, open_runtime

SinceOption = Annotated[str | None, typer.Option(help="From (ISO-8601, UTC if naive).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _num(value: float | None, form: str = "{:.3f}") -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else form.format(value)


def scores(
    ctx: typer.Context,
    series_id: Annotated[str, typer.Argument(help="Series id, e.g. ampds2/electricity/WHE.P")],
    model: Annotated[str | None, typer.Option(help="One model label (e.g. ses@v3).")] = None,
    step: Annotated[int | None, typer.Option(help="One horizon step (1 = the next point).")] = None,
    since: SinceOption = None,
    until: Annotated[str | None, typer.Option(help="Until, exclusive (ISO-8601).")] = None,
    rows: Annotated[int, typer.Option(help="List the newest ROWS scores instead of the summary.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """The online scores of one series: MAE, RMSE, MASE and interval coverage per model and step."""
    from sparkhu.online.scoring import check_query, scores, summary
    from sparkhu.timeaxis import parse_time

    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    check_query(series_id, since=start, until=end, step=step, limit=rows or None)
    with open_runtime(ctx) as runtime:
        runtime.catalog.series(series_id)  # NotFoundError for an unknown id
        if rows:
            table = scores(
                runtime.catalog, series_id, model=model, step=step, since=start, until=end, limit=rows
            )
            _print_rows(table.to_pylist(), as_json)
            return
        found = summary(runtime.catalog, series_id, model=model, step=step, since=start, until=end)
    if as_json:
        console.print_json(json.dumps([_jsonable(vars(s)) for s in found]))
        return
    out = Table("model", "step", "scored", "MAE", "RMSE", "MASE", "coverage", "first target", "last target")
    for s in found:
        out.add_row(
            s.model,
            str(s.step),
            f"{s.count:,}",
            _num(s.mae),
            _num(s.rmse),
            _num(s.mase),
            _num(s.coverage, "{:.1%}"),
            s.first_target.isoformat(),
            s.last_target.isoformat(),
        )
    console.print(
        out if found else f"no scores for {series_id} yet (its forecasts' targets have not arrived)"
    )


def _print_rows(found: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps([_jsonable(r) for r in found]))
        return
    out = Table("target", "model", "step", "actual", "forecast", "error", "covered")
    for r in found:
        covered = "" if r["covered"] is None else ("yes" if r["covered"] else "no")
        out.add_row(
            r["target_ts"].isoformat(),
            r["model"],
            str(r["step"]),
            _num(r["actual"], "{:.2f}"),
            _num(r["forecast"], "{:.2f}"),
            _num(r["error"], "{:+.2f}"),
            covered,
        )
    console.print(out)


def drift(
    ctx: typer.Context,
    series_id: Annotated[str | None, typer.Argument(help="Only this series (default: all).")] = None,
    since: SinceOption = None,
    kind: Annotated[str | None, typer.Option(help="level, variance or error.")] = None,
    limit: Annotated[int, typer.Option(help="The newest LIMIT events.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Drift events found by the online predictor, oldest first."""
    from sparkhu.online.drift import drift_events
    from sparkhu.online.scoring import check_query
    from sparkhu.timeaxis import parse_time

    start = parse_time(since, "--since")
    check_query(series_id)
    with open_runtime(ctx) as runtime:
        if series_id is not None:
            runtime.catalog.series(series_id)  # NotFoundError for an unknown id
        events = drift_events(runtime.catalog, series_id, start, kind=kind, limit=limit)
    if as_json:
        console.print_json(json.dumps([_jsonable(vars(e)) for e in events]))
        return
    out = Table("at", "series", "kind", "model", "detector", "statistic", "threshold")
    for e in events:
        out.add_row(
            e.ts.isoformat(),
            e.series_id,
            e.kind,
            e.model,
            e.detector,
            _num(e.statistic, "{:.1f}"),
            _num(e.threshold, "{:.1f}"),
        )
    console.print(out if events else "no drift events")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if hasattr(v, "isoformat") else None if isinstance(v, float) and math.isnan(v) else v
        for k, v in row.items()
    }
