"""The GraphQL schema: queries, one mutation and live subscriptions.

Resolvers are thin: they run a function of :mod:`sparkhu.gateway.resolvers` in a worker
thread (storage calls block) and convert the Arrow result with :mod:`sparkhu.gateway.types`.
Errors keep their sparkhu class and get their ``extensions.code`` from
:class:`~sparkhu.gateway.errors.ErrorCodes`; a depth limit guards the nested fields
(``Series.runs`` ↔ ``Run.series``) and a cost budget over the whole document (:mod:`sparkhu.gateway.cost`).
Subscriptions share one poller per series (:mod:`sparkhu.gateway.live`).

>>> schema = build_schema()
>>> "featurePrediction(input: PredictionInput!): FeaturePrediction" in str(schema)
True
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial
from typing import Annotated

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import AddValidationRules, ParserCache, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from sparkhu.config import GatewaySettings
from sparkhu.gateway import resolvers as r
from sparkhu.gateway.control import ControlMutation, ControlQuery, ControlSubscription
from sparkhu.gateway.cost import QueryCost
from sparkhu.gateway.errors import ErrorCodes
from sparkhu.gateway.lineage import LineageQuery, MetadataMutation
from sparkhu.gateway.online import OnlineQuery
from sparkhu.gateway.operator_types import OperatorMutation, OperatorQuery
from sparkhu.gateway.retention import RetentionMutation, RetentionQuery
from sparkhu.gateway.services import DEFAULT_MAX_DEPTH
from sparkhu.gateway.sparkstudy import SparkStudyQuery
from sparkhu.gateway.types import (
    BlendAlpha,
    BlendedColumns,
    BlendedPoint,
    DateTimeScalar,
    FeaturePrediction,
    GatewayContext,
    Info,
    Point,
    PointColumns,
    PredictionInput,
    RawForecast,
    Run,
    Series,
    TokenRequired,
    call,
    floats,
    to_blended,
    to_blended_columns,
    to_points,
    to_raw,
    to_time_values,
)

DEFAULT_MAX_POINTS = GatewaySettings.model_fields["max_points"].default
DEFAULT_MAX_COST = GatewaySettings.model_fields["max_query_cost"].default
DOCUMENT_CACHE = 256
"""Distinct documents whose parse and validation are kept."""

# --- operations ------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(description="Series whose id starts with prefix.")
    async def series(self, info: Info, prefix: str = "", limit: int = 100) -> list[Series]:
        records = await call(r.list_series, info.context.services, prefix, limit)
        return [Series.of(record) for record in records]

    @strawberry.field(description="One series by id (NOT_FOUND if unknown).")
    async def series_by_id(self, info: Info, id: str) -> Series:
        return Series.of(await call(r.get_series, info.context.services, id))

    @strawberry.field(description="Actual points with start <= ts < end, oldest first.")
    async def points(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Point]:
        table = await call(r.read_points, info.context.services, series_id, start, end, limit)
        return to_points(table)

    @strawberry.field(description="Blended forecasts with start <= target < end, by target time.")
    async def predictions(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[BlendedPoint]:
        table = await call(r.read_blended, info.context.services, series_id, start, end, limit)
        return to_blended(table)

    @strawberry.field(description="Like points, as columns (ts[], value[]): use it for many points.")
    async def point_columns(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> PointColumns:
        table = await call(r.read_points, info.context.services, series_id, start, end, limit)
        return PointColumns(
            count=table.num_rows, ts=r.datetimes(table.column("ts")), value=floats(table, "value")
        )

    @strawberry.field(description="Like predictions, as columns: use it for many points.")
    async def prediction_columns(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> BlendedColumns:
        table = await call(r.read_blended, info.context.services, series_id, start, end, limit)
        return to_blended_columns(table)

    @strawberry.field(description="Raw forecasts with start <= target < end, by target then origin.")
    async def raw_forecasts(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[RawForecast]:
        table = await call(r.read_raw, info.context.services, series_id, start, end, limit)
        return to_raw(table)

    @strawberry.field(
        description="The original gateway's query; reqNum defaults to 50 when neither end nor reqNum "
        "is given (the first 50 points from start)."
    )
    async def feature_prediction(
        self, info: Info, input_: Annotated[PredictionInput, strawberry.argument(name="input")]
    ) -> FeaturePrediction | None:
        window = await call(
            r.feature_prediction,
            info.context.services,
            input_.db_name,
            input_.table_name,
            input_.feature_name,
            input_.start,
            input_.end,
            input_.req_num,
        )
        return FeaturePrediction(
            series_id=window.series_id,
            start=window.start,
            end=window.end,
            length=window.feature.num_rows,
            feature=to_time_values(window.feature, "ts"),
            prediction=to_time_values(window.prediction, "target_ts"),
        )

    @strawberry.field(description="The newest run records, optionally of one kind.")
    async def runs(self, info: Info, kind: str | None = None, limit: int = 20) -> list[Run]:
        records = await call(r.recent_runs, info.context.services, kind, limit)
        return [Run.of(record) for record in records]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Override the SES blending weight of one series (audited).",
        permission_classes=[TokenRequired],
    )
    async def set_blend_alpha(self, info: Info, series_id: str, alpha: float) -> BlendAlpha:
        request = info.context.request
        actor = f"token@{request.client.host}" if request.client else "token"
        await call(r.set_blend_alpha, info.context.services, series_id, alpha, actor)
        return BlendAlpha(series_id=series_id, alpha=alpha)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Blended forecasts of a series as they change (polled).")
    async def prediction_updates(
        self, info: Info, series_id: str, interval_ms: int = 1000
    ) -> AsyncGenerator[list[BlendedPoint], None]:
        interval = r.check_interval(interval_ms)
        services = info.context.services
        topic = ("predictions", series_id)
        async with services.live.subscribe(
            topic, partial(r.PredictionFeed, services, series_id), interval
        ) as feed:
            async for changed in feed:
                yield to_blended(changed)

    @strawberry.subscription(description="New actual points of a series (polled from the lake).")
    async def point_updates(
        self, info: Info, series_id: str, since: datetime | None = None, interval_ms: int = 1000
    ) -> AsyncGenerator[list[Point], None]:
        interval = r.check_interval(interval_ms)
        services = info.context.services
        topic = ("points", series_id)
        # One poller per series reads what is new for everyone; a subscriber's own ``since``
        # is served by one read of its backlog, and what the poller sends is cut after it.
        async with services.live.subscribe(
            topic, partial(r.PointFeed, services, series_id), interval
        ) as feed:
            seen = since
            if since is not None:
                backlog = await call(r.points_after, services, series_id, since)
                if backlog.num_rows:
                    seen = r.last_ts(backlog)
                    yield to_points(backlog)
            async for fresh in feed:
                fresh = r.points_after_table(fresh, seen)
                if fresh.num_rows:
                    seen = r.last_ts(fresh)
                    yield to_points(fresh)


class GatewaySchema(strawberry.Schema):
    """Errors are logged once, where :class:`~sparkhu.gateway.errors.ErrorCodes` maps them."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log nothing here: server-side errors are logged by ``error_info``, client ones not at all."""


def build_schema(
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_points: int = DEFAULT_MAX_POINTS,
    max_cost: int = DEFAULT_MAX_COST,
) -> strawberry.Schema:
    """The gateway schema with error codes, a query depth limit and a cost budget per request.

    Documents are parsed and validated once per distinct text (bounded caches): dashboards
    send the same few documents over and over.
    """
    # One rule class for every request, so that the validation cache can hit.
    depth_rule = create_validator(max_depth, should_ignore=None)
    return GatewaySchema(
        query=merge_types(
            "Query",
            (Query, RetentionQuery, SparkStudyQuery, LineageQuery, OperatorQuery, OnlineQuery, ControlQuery),
        ),
        mutation=merge_types(
            "Mutation", (Mutation, RetentionMutation, MetadataMutation, OperatorMutation, ControlMutation)
        ),
        subscription=merge_types("Subscription", (Subscription, ControlSubscription)),
        extensions=[
            ErrorCodes,
            lambda: ParserCache(maxsize=DOCUMENT_CACHE),
            lambda: AddValidationRules([depth_rule]),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE),
            lambda: QueryCost(budget=max_cost, max_points=max_points),
        ],
        scalar_overrides={datetime: DateTimeScalar},
    )


__all__ = ["GatewayContext", "GatewaySchema", "build_schema"]
