"""``sparkhu meta``, ``sparkhu lineage`` and ``sparkhu feature-views``: the feature metadata store.

* ``meta sources | datasets | partitions ZONE DATASET``: what the catalog recorded of the sources
  (settings, watermarks) and of every lake write (rows, bytes, time range, writing run);
* ``meta describe | tag | search | tags | reindex``: a series' description and tags, and the search
  over them;
* ``meta import FILE | --sql URI --query Q`` and ``meta export FILE``: metadata sync (all or nothing);
* ``lineage SERIES [--json] [--emit]``: where a series comes from and what was made of it;
* ``feature-views apply FILE | list | describe NAME | get NAME``: named, versioned model inputs.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli.common import console, open_runtime
from sparkhu.errors import InputError

meta_app = typer.Typer(
    help="The feature metadata store: sources, datasets, series metadata, sync.", no_args_is_help=True
)
views_app = typer.Typer(help="Feature views: named, versioned model inputs.", no_args_is_help=True)


def _fmt(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n:,} B"


def _tags(pairs: list[str], option: str) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{pair!r} is not key=value", field=option)
        tags[key] = value
    return tags


# ---------------------------------------------------------------------- records


@meta_app.command("sources")
def sources(ctx: typer.Context) -> None:
    """Sources (from sparkhu.toml or the command line) with their settings and watermarks."""
    with open_runtime(ctx) as runtime:
        rows = runtime.catalog.sources()
    table = Table("source", "kind", "feeds", "watermarks", "updated")
    for row in rows:
        config = row["config"] or {}
        feeds = (
            f"{config['source']}/{config['measurement']}"
            if "source" in config and "measurement" in config
            else ""
        )
        marks = "; ".join(f"{k or '-'}: {json.dumps(v)}" for k, v in row["watermarks"].items())
        table.add_row(row["name"], row["kind"], feeds, marks, _fmt(row["updated_at"]))
    console.print(table)


@meta_app.command("datasets")
def datasets(
    ctx: typer.Context,
    zone: Annotated[str | None, typer.Option(help="Only this zone (raw, clean...).")] = None,
) -> None:
    """Lake datasets as the catalog recorded their writes: partitions, rows, bytes, time range."""
    with open_runtime(ctx) as runtime:
        rows = runtime.catalog.datasets(zone)
    table = Table("zone", "dataset", "partitions", "files", "rows", "size", "from", "to", "updated")
    for row in rows:
        table.add_row(
            row["zone"],
            row["dataset"],
            str(row["partitions"]),
            str(row["files"]),
            f"{row['rows']:,}",
            _size(row["bytes"]),
            _fmt(row["first_ts"]),
            _fmt(row["last_ts"]),
            _fmt(row["updated_at"]),
        )
    console.print(table)


@meta_app.command("partitions")
def partitions(
    ctx: typer.Context,
    zone: Annotated[str, typer.Argument(help="raw, clean, ...")],
    dataset: Annotated[str, typer.Argument()],
) -> None:
    """The recorded partitions of one dataset: files, rows, bytes, time range and the writing run."""
    with open_runtime(ctx) as runtime:
        rows = runtime.catalog.list_partitions(zone, dataset)
    if not rows:
        raise InputError(
            f"no partition of {zone}/{dataset} is recorded; list them with `sparkhu meta datasets`"
        )
    table = Table("partition", "files", "rows", "size", "from", "to", "written by")
    for row in rows:
        table.add_row(
            row["key"],
            str(row["files"]),
            f"{row['rows']:,}",
            _size(row["bytes"]),
            _fmt(row["first_ts"]),
            _fmt(row["last_ts"]),
            row["run_id"] or "",
        )
    console.print(table)


# ---------------------------------------------------------------------- series metadata


@meta_app.command("describe")
def describe(
    ctx: typer.Context,
    series_id: Annotated[str, typer.Argument(help="Series id, e.g. ampds2/electricity/WHE.P")],
    text: Annotated[str | None, typer.Argument(help="New description (none: show the series).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the description.")] = False,
) -> None:
    """Show a series' metadata, or set (or clear) its free-form description."""
    with open_runtime(ctx) as runtime:
        if text is not None or clear:
            runtime.catalog.describe_series(series_id, None if clear else text)
        info = runtime.catalog.series(series_id)
        upstream, downstream = runtime.catalog.series_links(series_id)
    console.print(f"[bold]{info.series_id}[/bold]  {info.unit or ''}")
    console.print(f"description: {info.description or '-'}")
    console.print("tags: " + (", ".join(f"{k}={v}" for k, v in sorted(info.tags.items())) or "-"))
    console.print(f"points: {info.count:,}  from {_fmt(info.first_ts) or '-'} to {_fmt(info.last_ts) or '-'}")
    if upstream or downstream:
        console.print(f"upstream: {', '.join(upstream) or '-'}  downstream: {', '.join(downstream) or '-'}")


@meta_app.command("tag")
def tag(
    ctx: typer.Context,
    series_id: Annotated[str, typer.Argument()],
    tags: Annotated[list[str] | None, typer.Argument(help="key=value tags to add or change.")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", "-r", help="Tag key to remove.")] = None,
) -> None:
    """Add, change or remove tags of one series."""
    with open_runtime(ctx) as runtime:
        now = runtime.catalog.tag_series(series_id, _tags(tags or [], "tags"), remove or [])
    console.print(f"{series_id}: " + (", ".join(f"{k}={v}" for k, v in sorted(now.items())) or "no tags"))


@meta_app.command("search")
def search(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Text in the id or the description (any case).")] = "",
    tag_: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="key=value the series must carry.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Only ids starting with this.")] = "",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    """Find series by tags and text."""
    with open_runtime(ctx) as runtime:
        found = runtime.catalog.search_series(
            tags=_tags(tag_ or [], "--tag"), text=text, prefix=prefix, limit=limit
        )
    table = Table("series", "unit", "tags", "description")
    for info in found:
        table.add_row(
            info.series_id,
            info.unit or "",
            ", ".join(f"{k}={v}" for k, v in sorted(info.tags.items())),
            info.description or "",
        )
    console.print(table)
    console.print(f"{len(found)} series" + (f" (the first {limit})" if len(found) == limit else ""))


@meta_app.command("tags")
def tags_cmd(ctx: typer.Context) -> None:
    """Every tag key and how many series carry it."""
    with open_runtime(ctx) as runtime:
        rows = runtime.catalog.tag_keys()
    table = Table("tag", "series")
    for key, count in rows:
        table.add_row(key, f"{count:,}")
    console.print(table)


@meta_app.command("reindex")
def reindex(ctx: typer.Context) -> None:
    """Rebuild the text index of every series (the words of its id and description)."""
    with open_runtime(ctx) as runtime:
        count = runtime.catalog.index_series_words()
    console.print(f"indexed the words of {count:,} series")


@meta_app.command("import")
def import_cmd(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="A .csv or .json file of series metadata.")] = None,
    sql: Annotated[str | None, typer.Option(help="Read from this database instead (SQLAlchemy URL).")] = None,
    query: Annotated[
        str | None, typer.Option(help="With --sql: the SELECT giving series_id, description...")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or json (default: from the suffix).")
    ] = None,
) -> None:
    """Import series metadata, all or nothing: the first bad record is named and nothing is changed."""
    from sparkhu.metadata import sync

    if (path is None) == (sql is None):
        raise InputError("give a file, or --sql URI with --query")
    if sql is not None and not query:
        raise InputError("--sql needs --query 'SELECT ... AS series_id, ...'", field="--query")
    records = sync.read_file(path, fmt) if path is not None else sync.read_sql(str(sql), str(query))
    with open_runtime(ctx) as runtime:
        count = sync.import_records(runtime.catalog, records)
    console.print(f"imported the metadata of {count} series")


@meta_app.command("export")
def export_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The .csv or .json file to write.")],
    prefix: Annotated[str, typer.Option(help="Only series whose id starts with this.")] = "",
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or json (default: from the suffix).")
    ] = None,
) -> None:
    """Export series metadata (what `meta import` reads back)."""
    from sparkhu.metadata import sync

    sync.file_format(path, fmt)
    with open_runtime(ctx) as runtime:
        rows = sync.export_rows(runtime.catalog, prefix=prefix)
    sync.write_file(rows, path, fmt)
    console.print(f"exported the metadata of {len(rows)} series to {path}")


# ---------------------------------------------------------------------- lineage


def lineage(
    ctx: typer.Context,
    series_id: Annotated[str, typer.Argument(help="Series id, e.g. ampds2/electricity/WHE.P")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph as JSON.")] = False,
    emit: Annotated[
        bool, typer.Option("--emit", help="Send its OpenLineage events ([metadata] openlineage).")
    ] = False,
    openlineage: Annotated[
        bool, typer.Option("--openlineage", help="Print its OpenLineage events (JSON lines) instead.")
    ] = False,
) -> None:
    """Where a series comes from and what was made of it: source, topic, datasets, tasks, training,
    models, forecasts and retention actions."""
    with open_runtime(ctx) as runtime:
        from sparkhu.app.metadata import emitter, openlineage_events, series_lineage

        graph = series_lineage(runtime, series_id)
        events = openlineage_events(runtime, [graph]) if (emit or openlineage) else []
        if emit:
            target = emitter(runtime)
            if not target.enabled:
                raise InputError(
                    "set [metadata] openlineage (a file or an http(s) URL) to send events", field="--emit"
                )
            target.emit(events)
    if openlineage:
        for event in events:
            print(json.dumps(event, sort_keys=True))
    elif as_json:
        print(json.dumps(graph.to_dict(), indent=2, sort_keys=True))
    else:
        for line in graph.lines():
            console.print(line, soft_wrap=True)
    if emit:
        console.print(f"sent {len(events)} OpenLineage event(s) to {runtime.settings.metadata.openlineage}")


# ---------------------------------------------------------------------- feature views


@views_app.command("apply")
def views_apply(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A TOML or JSON file of [[feature_views]].")],
) -> None:
    """Define or update feature views (a changed definition gets a new version)."""
    from sparkhu.metadata.features import apply_view, parse_view

    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}", source=str(path)) from exc
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InputError(
            f"not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}", source=str(path)
        ) from exc
    items = doc.get("feature_views") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise InputError("expected a list [[feature_views]] of at least one view", source=str(path))
    views = [parse_view(item, f"{path}: feature view {n}") for n, item in enumerate(items, start=1)]
    with open_runtime(ctx) as runtime:
        for view in views:
            console.print(f"{view.name}: version {apply_view(runtime.catalog, view)}")


@views_app.command("list")
def views_list(ctx: typer.Context) -> None:
    """The feature views, newest version each."""
    with open_runtime(ctx) as runtime:
        rows = runtime.catalog.feature_views()
    table = Table("feature view", "version", "dataset", "zone", "series", "window", "description")
    for row in rows:
        body = row["body"]
        chosen = ", ".join(body.get("series") or []) or (
            f"{body.get('prefix')}*" if body.get("prefix") else "all"
        )
        table.add_row(
            row["name"],
            str(row["version"]),
            body.get("dataset", ""),
            body.get("zone", ""),
            chosen,
            str(body.get("window", "")),
            row["description"] or "",
        )
    console.print(table)


@views_app.command("describe")
def views_describe(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    version: Annotated[int | None, typer.Option(help="This version (default: the newest).", min=1)] = None,
) -> None:
    """One feature view's definition and the model versions trained on it."""
    from sparkhu.metadata.features import get_view

    with open_runtime(ctx) as runtime:
        view = get_view(runtime.catalog, name, version)
        models = [m for m in runtime.catalog.models() if m["feature_view"] == name]
    print(json.dumps(view.model_dump(mode="json"), indent=2, sort_keys=True))
    for m in models:
        console.print(
            f"trained on it: {m['name']} v{m['version']} (view version {m['feature_view_version']})"
        )


@views_app.command("get")
def views_get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    series: Annotated[
        list[str] | None, typer.Option("--series", "-s", help="Only these series of the view.")
    ] = None,
    version: Annotated[int | None, typer.Option(help="This version (default: the newest).", min=1)] = None,
) -> None:
    """The features a model of this view is served: the newest window of each series."""
    from sparkhu.metadata.features import features, get_view

    with open_runtime(ctx) as runtime:
        view = get_view(runtime.catalog, name, version)
        table = features(runtime.lake, view, series=series)
    out = Table("series", "points", "from", "to", "last value")
    counts = table.group_by("series_id", use_threads=False).aggregate(
        [("ts", "count"), ("ts", "min"), ("ts", "max"), ("value", "last")]
    )
    for row in counts.to_pylist():
        out.add_row(
            str(row["series_id"]),
            str(row["ts_count"]),
            _fmt(row["ts_min"]),
            _fmt(row["ts_max"]),
            f"{row['value_last']:.3f}",
        )
    console.print(out)
    console.print(f"feature view {view.name} v{view.version}: {table.num_rows:,} points")
