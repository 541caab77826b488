"""The lineage of one series as a graph: source → topic → raw dataset → pipeline tasks and their
outputs → training runs → model versions → forecasts, with the retention actions applied to its
datasets and the series declared upstream or downstream of it.

:func:`lineage` reads the catalog's facts in a few indexed queries
(:meth:`~sparkhu.storage.catalog.Catalog.lineage_facts`) and :func:`build_lineage` draws them;
the CLI (``sparkhu lineage``), the GraphQL ``lineage`` query and the dashboard's lineage page all
show this one graph, and :mod:`sparkhu.metadata.openlineage` turns its runs into events.

>>> import tempfile
>>> from sparkhu.series import points
>>> from sparkhu.storage.catalog import Catalog, SeriesInfo
>>> with tempfile.TemporaryDirectory() as tmp:
...     catalog = Catalog(f"sqlite:///{tmp}/c.db")
...     catalog.upsert_series(SeriesInfo.of("home/power/P"))
...     catalog.upsert_source("meter", "file", {"source": "home", "measurement": "power"})
...     graph = lineage(catalog, "home/power/P")
...     catalog.close()
>>> [node.id for node in graph.nodes]
['series:home/power/P', 'source:meter', 'topic:sparkhu.home.power', 'dataset:raw/home_power']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sparkhu.series import SeriesId
from sparkhu.storage.catalog import Catalog
from sparkhu.timeaxis import from_us

GLOBAL_PREFIX = "sparkhu.global."
"""The registered name of a global model (one fit over many series) starts with this."""
KINDS = ("series", "source", "topic", "dataset", "task", "train", "model", "forecast", "retention")
"""Node kinds, in the order of the data's way."""


@dataclass(frozen=True)
class Node:
    """One thing on the series' way: ``kind`` (one of :data:`KINDS`), a stable ``id``, a ``label``
    and what the catalog knows of it (``detail``, JSON-able)."""

    id: str
    kind: str
    label: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    """``source`` → ``target``: ``relation`` says how (``publishes``, ``lands``, ``reads``, ``writes``,
    ``trains``, ``registers``, ``forecasts``, ``retains``, ``derives``)."""

    source: str
    target: str
    relation: str


@dataclass
class LineageGraph:
    """The lineage of ``series_id``: nodes in the order of the data's way, and edges."""

    series_id: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def add(self, node: Node) -> Node:
        """Add ``node`` unless one of its id is there; the node of that id."""
        for have in self.nodes:
            if have.id == node.id:
                return have
        self.nodes.append(node)
        return node

    def link(self, source: str, target: str, relation: str) -> None:
        """Add the edge unless it is there."""
        edge = Edge(source, target, relation)
        if edge not in self.edges:
            self.edges.append(edge)

    def of_kind(self, kind: str) -> list[Node]:
        """The nodes of ``kind``."""
        return [node for node in self.nodes if node.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: ``{"series_id", "nodes": [...], "edges": [...]}``."""
        return {
            "series_id": self.series_id,
            "nodes": [asdict(node) for node in self.nodes],
            "edges": [asdict(edge) for edge in self.edges],
        }

    def lines(self) -> list[str]:
        """The graph as indented text, one node per line in the order of the data's way (the CLI's)."""
        out = []
        incoming: dict[str, list[Edge]] = {}
        for edge in self.edges:
            incoming.setdefault(edge.target, []).append(edge)
        for kind in KINDS:
            for node in self.of_kind(kind):
                came = ", ".join(
                    f"{e.relation} ← {e.source.split(':', 1)[1]}" for e in incoming.get(node.id, [])
                )
                out.append(f"{kind:<9} {node.label}" + (f"   ({came})" if came else ""))
        return out


def lineage(catalog: Catalog, series_id: str, *, topic_prefix: str = "sparkhu.") -> LineageGraph:
    """The lineage graph of ``series_id`` from ``catalog`` (``topic_prefix``: ``[bus] topic_prefix``).

    Raises :class:`~sparkhu.errors.NotFoundError` for a series the catalog does not know.
    """
    return build_lineage(catalog.lineage_facts(series_id), topic_prefix=topic_prefix)


def build_lineage(facts: Mapping[str, Any], *, topic_prefix: str = "sparkhu.") -> LineageGraph:
    """Draw :meth:`~sparkhu.storage.catalog.Catalog.lineage_facts` as a :class:`LineageGraph`."""
    info = facts["series"]
    sid = SeriesId.parse(info.series_id)
    graph = LineageGraph(info.series_id)
    focus = graph.add(
        Node(
            f"series:{sid}",
            "series",
            str(sid),
            _jsonable(
                {
                    "unit": info.unit,
                    "description": info.description,
                    "tags": info.tags,
                    "count": info.count,
                    "first_ts": info.first_ts,
                    "last_ts": info.last_ts,
                }
            ),
        )
    )
    raw_name = f"raw/{sid.source}_{sid.measurement}"
    totals = {f"{d['zone']}/{d['dataset']}": d for d in facts["datasets"]}
    raw = graph.add(_dataset_node(raw_name, totals))
    topic = f"{topic_prefix}{sid.source}.{sid.measurement}"
    sources = [s for s in facts["sources"] if _feeds(s, sid)]
    if sources:
        graph.nodes.remove(raw)
        for source in sources:
            node = graph.add(
                Node(
                    f"source:{source['name']}",
                    "source",
                    source["name"],
                    _jsonable(
                        {
                            "kind": source["kind"],
                            "config": source["config"],
                            "watermarks": source["watermarks"],
                        }
                    ),
                )
            )
            graph.link(node.id, f"topic:{topic}", "publishes")
        graph.add(Node(f"topic:{topic}", "topic", topic))
        graph.link(f"topic:{topic}", raw.id, "lands")
        graph.add(raw)
    for run in facts["task_runs"]:
        params = run["params"] or {}
        task = graph.add(
            Node(f"task:{run['name']}", "task", run["name"], _run_detail(run, facts["series_runs"]))
        )
        for name in params.get("inputs") or [raw_name]:
            graph.link(graph.add(_dataset_node(name, totals)).id, task.id, "reads")
        for name in params.get("outputs") or []:
            graph.link(task.id, graph.add(_dataset_node(name, totals)).id, "writes")
    train_runs = {run["run_id"]: run for run in facts["train_runs"]}
    for model in facts["models"]:
        version = Node(
            f"model:{model['name']}/{model['version']}",
            "model",
            f"{model['name']} v{model['version']}",
            _jsonable(
                {
                    "uri": model["uri"],
                    "metrics": model["metrics"],
                    "aliases": model["aliases"],
                    "created_at": from_us(model["created_at"]),
                    "feature_view": model["feature_view"],
                    "feature_view_version": model["feature_view_version"],
                }
            ),
        )
        graph.add(version)
        run = train_runs.get(model["run_id"] or "")
        if run is not None:
            train = graph.add(
                Node(f"train:{run['run_id']}", "train", f"{run['name']} {run['run_id']}", _run_detail(run))
            )
            dataset = (run["params"] or {}).get("dataset")
            if isinstance(dataset, str):
                graph.link(graph.add(_dataset_node(dataset, totals)).id, train.id, "reads")
            graph.link(train.id, version.id, "registers")
    versions = {_forecast_label(node): node for node in graph.of_kind("model")}
    for forecast in facts["forecasts"]:
        label = forecast["model"]
        node = graph.add(
            Node(
                f"forecast:{label}",
                "forecast",
                f"{label}: {forecast['rows']} forecasts",
                _jsonable(
                    {
                        "rows": forecast["rows"],
                        "first_origin": from_us(forecast["first_origin"]),
                        "last_origin": from_us(forecast["last_origin"]),
                        "last_target": from_us(forecast["last_target"]),
                    }
                ),
            )
        )
        kind, _, number = label.rpartition("@v")
        made_by = versions.get((kind if kind.startswith("global-") else "", number))
        graph.link(made_by.id if made_by is not None else focus.id, node.id, "forecasts")
    datasets = {node.label for node in graph.of_kind("dataset")}
    for action in facts["retention"]:
        node = graph.add(
            Node(
                f"retention:{action['id']}",
                "retention",
                f"{action['action']} {action['target']}",
                _jsonable({"actor": action["actor"], "at": action["at"], "detail": action["detail"]}),
            )
        )
        target = next((d for d in sorted(datasets) if action["target"].startswith(d)), None)
        graph.link(f"dataset:{target}" if target else focus.id, node.id, "retains")
    for up in facts["upstream"]:
        graph.link(graph.add(Node(f"series:{up}", "series", up)).id, focus.id, "derives")
    for down in facts["downstream"]:
        graph.link(focus.id, graph.add(Node(f"series:{down}", "series", down)).id, "derives")
    return graph


def _forecast_label(model: Node) -> tuple[str, str]:
    """How the forecasts of a model version name it: ``<kind>@v<n>`` for a series' own model (any
    kind: ``("", n)``), ``global-<model>@v<n>`` for a global one (``("global-<model>", n)``)."""
    name, _, number = model.id.split(":", 1)[1].rpartition("/")
    kind = "global-" + name[len(GLOBAL_PREFIX) :] if name.startswith(GLOBAL_PREFIX) else ""
    return kind, number


def _feeds(source: Mapping[str, Any], sid: SeriesId) -> bool:
    """Whether a recorded source feeds the series' measurement (by its settings, else by its name)."""
    config = source.get("config") or {}
    if "source" in config and "measurement" in config:
        return bool(config["source"] == sid.source and config["measurement"] == sid.measurement)
    return bool(source["name"] == sid.source)


def _dataset_node(name: str, totals: Mapping[str, Mapping[str, Any]]) -> Node:
    return Node(f"dataset:{name}", "dataset", name, _jsonable(dict(totals.get(name, {}))))


def _run_detail(run: Mapping[str, Any], series_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a lineage shows of a run record (and, for a task, this series' own newest record of it)."""
    detail = {
        "run_id": run["run_id"],
        "name": run["name"],
        "kind": run["kind"],
        "status": run["status"],
        "runs": run.get("runs", 1),
        "started_at": from_us(run["started_at"]),
        "finished_at": from_us(run["finished_at"]),
        "interval_start": from_us(run["interval_start"]),
        "interval_end": from_us(run["interval_end"]),
        "rows_in": run["rows_in"],
        "rows_out": run["rows_out"],
        "error": run["error"],
    }
    mine = next(
        (r for r in series_runs or [] if r["name"] == run["name"] and r["kind"] == "pipeline.series"), None
    )
    if mine is not None:
        detail["series_status"] = mine["status"]
        detail["series_runs"] = mine.get("runs", 1)
    return _jsonable(detail)


def _jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO-8601 text (JSON for the API, the CLI and OpenLineage)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
