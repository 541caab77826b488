"""The online evaluation at the gateway: scores of the forecasts whose targets arrived, their summary,
and drift events (:class:`OnlineQuery`, merged into the schema by :mod:`sparkhu.gateway.schema`).

A malformed argument answers ``BAD_USER_INPUT`` naming it, an unknown series ``NOT_FOUND``.

>>> from sparkhu.gateway.schema import build_schema
>>> text = str(build_schema())
>>> "driftEvents(seriesId: String = null, since: DateTime = null, limit: Int! = 100): [DriftEvent!]!" in text
True
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from sparkhu.gateway.types import Info, call
from sparkhu.online import drift, scoring

__all__ = ["OnlineQuery"]


@strawberry.type
class OnlineScore:
    series_id: str
    model: str
    origin_ts: datetime
    target_ts: datetime
    step: int
    actual: float
    forecast: float
    error: float
    abs_error: float
    scale: float | None = strawberry.field(description="MASE's scale: the window's seasonal-naive MAE.")
    covered: bool | None = strawberry.field(description="The interval held the actual (null: none).")


@strawberry.type
class OnlineScoreSummary:
    series_id: str
    model: str
    step: int | None
    count: int
    mae: float
    rmse: float
    mase: float | None
    coverage: float | None
    first_target: datetime
    last_target: datetime


@strawberry.type
class DriftEvent:
    series_id: str
    ts: datetime = strawberry.field(description="The point at which the drift was detected.")
    kind: str = strawberry.field(description="level, variance (the input) or error (the online errors)")
    model: str = strawberry.field(description="The model whose errors drifted; empty for the input.")
    detector: str
    statistic: float
    threshold: float
    detected_at: datetime


def _scores(services: Any, series_id: str, **query: Any) -> list[dict[str, Any]]:
    scoring.check_query(series_id, since=query["since"], until=query["until"], step=query["step"])
    services.catalog.series(series_id)  # NOT_FOUND for an unknown series
    return scoring.scores(services.catalog, series_id, **query).to_pylist()


def _summary(services: Any, series_id: str, **query: Any) -> list[scoring.ScoreSummary]:
    scoring.check_query(series_id, since=query["since"], until=query["until"], step=query["step"])
    services.catalog.series(series_id)
    return scoring.summary(services.catalog, series_id, **query)


def _drift(
    services: Any, series_id: str | None, since: datetime | None, limit: int
) -> list[drift.DriftEvent]:
    scoring.check_query(series_id)
    if series_id is not None:
        services.catalog.series(series_id)
    return drift.drift_events(services.catalog, series_id, since, limit=limit)


@strawberry.type
class OnlineQuery:
    @strawberry.field(
        description="Scores of the online forecasts of a series whose targets arrived in [since, until): "
        "the newest limit, by target (one model label, one horizon step when given)."
    )
    async def online_scores(
        self,
        info: Info,
        series_id: str,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        step: int | None = None,
        limit: int = 1000,
    ) -> list[OnlineScore]:
        rows = await call(
            lambda: _scores(
                info.context.services,
                series_id,
                model=model,
                step=step,
                since=since,
                until=until,
                limit=limit,
            )
        )
        return [
            OnlineScore(**{k: v for k, v in row.items() if k != "sq_error"})  # rmse is the summary's
            for row in rows
        ]

    @strawberry.field(
        description="MAE, RMSE, MASE and interval coverage of a series' online scores per model and step."
    )
    async def online_score_summary(
        self,
        info: Info,
        series_id: str,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        step: int | None = None,
    ) -> list[OnlineScoreSummary]:
        found = await call(
            lambda: _summary(
                info.context.services, series_id, model=model, step=step, since=since, until=until
            )
        )
        return [OnlineScoreSummary(**vars(s)) for s in found]

    @strawberry.field(description="Drift events (of one series, from since), the newest limit, oldest first.")
    async def drift_events(
        self, info: Info, series_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[DriftEvent]:
        events = await call(lambda: _drift(info.context.services, series_id, since, limit))
        return [DriftEvent(**vars(e)) for e in events]
