"""The feature metadata store at the gateway: a series' lineage, series search, lake datasets and
feature views (:class:`LineageQuery`), and the edits of a series' description and tags
(:class:`MetadataMutation`, which needs the gateway token); merged into the schema by
:mod:`sparkhu.gateway.schema`. The dashboard's lineage page (``lineage.html``) reads ``lineage``.

>>> from sparkhu.gateway.schema import build_schema
>>> "lineage(seriesId: String!): Lineage!" in str(build_schema())
True
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from sparkhu.errors import InputError
from sparkhu.gateway.types import Info, Series, TokenRequired, call
from sparkhu.metadata.lineage import LineageGraph, lineage

__all__ = ["LineageQuery", "MetadataMutation"]


@strawberry.type
class LineageNode:
    id: str
    kind: str = strawberry.field(
        description="series, source, topic, dataset, task, train, model, forecast, retention"
    )
    label: str
    detail: JSON


@strawberry.type
class LineageEdge:
    source: str
    target: str
    relation: str = strawberry.field(
        description="publishes, lands, reads, writes, registers, forecasts, retains, derives"
    )


@strawberry.type
class Lineage:
    series_id: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]

    @classmethod
    def of(cls, graph: LineageGraph) -> Lineage:
        return cls(
            series_id=graph.series_id,
            nodes=[
                LineageNode(id=n.id, kind=n.kind, label=n.label, detail=JSON(n.detail)) for n in graph.nodes
            ],
            edges=[LineageEdge(source=e.source, target=e.target, relation=e.relation) for e in graph.edges],
        )


@strawberry.type
class LakeDataset:
    zone: str
    dataset: str
    partitions: int
    files: int
    rows: float
    bytes: float
    first_ts: datetime | None
    last_ts: datetime | None
    updated_at: datetime | None


@strawberry.type
class FeatureView:
    name: str
    version: int
    versions: int
    definition: JSON
    description: str | None


def _tags(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("expected an object of tag: value", field=name)
    return value


@strawberry.type
class LineageQuery:
    @strawberry.field(
        description="Where a series comes from and what was made of it: source, topic, datasets, pipeline "
        "tasks, training runs, model versions, forecasts, retention actions (NOT_FOUND if unknown)."
    )
    async def lineage(self, info: Info, series_id: str) -> Lineage:
        services = info.context.services
        graph = await call(lambda: lineage(services.catalog, series_id, topic_prefix=services.topic_prefix))
        return Lineage.of(graph)

    @strawberry.field(
        description="Series carrying every tag of tags (an object) whose id or description contains text."
    )
    async def series_search(
        self, info: Info, tags: JSON | None = None, text: str = "", prefix: str = "", limit: int = 100
    ) -> list[Series]:
        catalog = info.context.services.catalog
        wanted = _tags(tags, "tags")
        found = await call(lambda: catalog.search_series(tags=wanted, text=text, prefix=prefix, limit=limit))
        return [Series.of(record) for record in found]

    @strawberry.field(description="Lake datasets as the catalog recorded their writes.")
    async def lake_datasets(self, info: Info, zone: str | None = None) -> list[LakeDataset]:
        rows = await call(info.context.services.catalog.datasets, zone)
        return [LakeDataset(**row) for row in rows]

    @strawberry.field(description="Feature views, newest version each.")
    async def feature_views(self, info: Info) -> list[FeatureView]:
        rows = await call(info.context.services.catalog.feature_views)
        return [
            FeatureView(
                name=row["name"],
                version=row["version"],
                versions=row["versions"],
                definition=JSON(row["body"]),
                description=row["description"],
            )
            for row in rows
        ]


@strawberry.type
class MetadataMutation:
    @strawberry.mutation(
        description="Set (or, null, clear) a series' description.", permission_classes=[TokenRequired]
    )
    async def describe_series(self, info: Info, series_id: str, description: str | None) -> Series:
        catalog = info.context.services.catalog
        await call(catalog.describe_series, series_id, description)
        return Series.of(await call(catalog.series, series_id))

    @strawberry.mutation(
        description="Add or change tags (an object) and remove tag keys of a series.",
        permission_classes=[TokenRequired],
    )
    async def tag_series(
        self, info: Info, series_id: str, tags: JSON | None = None, remove: list[str] | None = None
    ) -> Series:
        catalog = info.context.services.catalog
        add = _tags(tags, "tags")
        await call(lambda: catalog.tag_series(series_id, add, remove or []))
        return Series.of(await call(catalog.series, series_id))
