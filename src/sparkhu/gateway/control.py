"""The controller at the gateway: training policies and the champion history (:class:`ControlQuery`),
the token-guarded moves (:class:`ControlMutation`: ``setPolicy``, ``deletePolicy``, ``retrainNow``,
``promote``, ``rollback``), each audited with the caller as actor, and the controller's events as they
are audited (:class:`ControlSubscription`: ``controllerEvents``); merged by :mod:`sparkhu.gateway.schema`.

A policy that cannot be (an impossible value) is ``BAD_INPUT`` with the field named; an unknown
policy or series ``NOT_FOUND``.

>>> from sparkhu.gateway.schema import build_schema
>>> "modelHistory(seriesId: String!, limit: Int! = 1000): [ChampionPeriod!]!" in str(build_schema())
True
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial
from typing import Any

import pyarrow as pa
import strawberry
from strawberry.scalars import JSON

from sparkhu.config import TrainingPolicy as PolicySettings
from sparkhu.control import moves
from sparkhu.control.policies import PolicyEntry, delete_policy, policies_in_force, policy_entries, set_policy
from sparkhu.errors import ConfigError, InputError, NotFoundError
from sparkhu.gateway.resolvers import check_interval
from sparkhu.gateway.services import GatewayServices
from sparkhu.gateway.types import Info, TokenRequired, actor, call
from sparkhu.series import SeriesId

__all__ = ["ControlMutation", "ControlQuery", "ControlSubscription"]


@strawberry.type
class TrainingPolicy:
    name: str
    series: str
    origin: str = strawberry.field(description="sparkhu.toml, or catalog (set at run time)")
    schedule: str | None
    drift: bool
    min_interval: str
    max_model_age: str | None
    budget_per_hour: int
    window: str
    engine: str
    margin: float
    min_points: int
    backtest_not_worse: bool
    rollback_margin: float
    gate_training: bool
    body: JSON = strawberry.field(description="The whole policy, as setPolicy takes it.")

    @classmethod
    def of(cls, entry: PolicyEntry) -> TrainingPolicy:
        p = entry.policy
        return cls(
            name=p.name, series=p.series, origin=entry.origin, schedule=p.schedule, drift=p.drift,
            min_interval=p.min_interval, max_model_age=p.max_model_age, budget_per_hour=p.budget_per_hour,
            window=p.window, engine=p.engine, margin=p.gate.margin, min_points=p.gate.min_points,
            backtest_not_worse=p.gate.backtest_not_worse, rollback_margin=p.rollback_margin,
            gate_training=p.gate_training, body=JSON(p.model_dump(mode="json")),
        )  # fmt: skip


@strawberry.type
class ChampionPeriod:
    version: int
    since: datetime
    until: datetime | None = strawberry.field(description="null while it is the champion")
    event: str = strawberry.field(description="train, promote or rollback")
    actor: str
    reason: str
    previous_version: int | None
    numbers: JSON


@strawberry.type
class Move:
    series_id: str
    cycle: int
    champion: int | None


def _registry(services: GatewayServices) -> Any:
    if services.registry is None:
        raise NotFoundError("the model registry is not available to this gateway")
    return services.registry()


def _as_input(exc: ConfigError, field: str) -> InputError:
    return InputError(str(exc).removeprefix(f"{field}: "), field=field)


@strawberry.type
class ControlQuery:
    @strawberry.field(description="The training policies in force (sparkhu.toml and set at run time).")
    async def policies(self, info: Info) -> list[TrainingPolicy]:
        services = info.context.services
        entries = await call(lambda: policy_entries(services.catalog, services.training_policies))
        return [TrainingPolicy.of(e) for e in entries]

    @strawberry.field(description="Which version was the series' champion, from when to when, and why.")
    async def model_history(self, info: Info, series_id: str, limit: int = 1000) -> list[ChampionPeriod]:
        catalog = info.context.services.catalog
        rows = await call(lambda: moves.history(catalog, series_id, limit=limit))
        return [_period(r) for r in rows]


def _period(row: dict[str, Any]) -> ChampionPeriod:
    return ChampionPeriod(
        version=row["version"],
        since=row["since"],
        until=row["until"],
        event=row["event"],
        actor=row["actor"],
        reason=row["reason"],
        previous_version=row["previous_version"],
        numbers=JSON(row["numbers"]),
    )


@strawberry.type
class ControlMutation:
    @strawberry.mutation(
        description="Create or replace a training policy (a JSON object of its fields); audited.",
        permission_classes=[TokenRequired],
    )
    async def set_policy(self, info: Info, policy: JSON) -> TrainingPolicy:
        services, who = info.context.services, actor(info)

        def save() -> PolicySettings:
            try:
                return set_policy(services.catalog, policy, actor=who)
            except ConfigError as exc:
                raise _as_input(exc, "policy") from exc

        return TrainingPolicy.of(PolicyEntry(await call(save), "catalog"))

    @strawberry.mutation(
        description="Delete a training policy set at run time; audited.", permission_classes=[TokenRequired]
    )
    async def delete_policy(self, info: Info, name: str) -> bool:
        services, who = info.context.services, actor(info)

        def remove() -> bool:
            try:
                delete_policy(services.catalog, name, actor=who, declared=services.training_policies)
            except ConfigError as exc:
                raise _as_input(exc, "name") from exc
            return True

        return await call(remove)

    @strawberry.mutation(
        description="Ask the controller to retrain a series now (a cycle under its policy).",
        permission_classes=[TokenRequired],
    )
    async def retrain_now(self, info: Info, series_id: str) -> Move:
        services, who = info.context.services, actor(info)

        def ask() -> Move:
            policies = policies_in_force(services.catalog, services.training_policies)
            try:
                cycle = moves.retrain_now(services.catalog, series_id, actor=who, policies=policies)
            except ConfigError as exc:
                raise _as_input(exc, "seriesId") from exc
            return Move(series_id=series_id, cycle=cycle, champion=None)

        return await call(ask)

    @strawberry.mutation(
        description="Make a registered version the series' champion now; audited, kept in the history.",
        permission_classes=[TokenRequired],
    )
    async def promote(self, info: Info, series_id: str, version: int, reason: str = "") -> Move:
        services, who = info.context.services, actor(info)

        def move() -> Move:
            policies = policies_in_force(services.catalog, services.training_policies)
            registry = _registry(services)
            cycle = moves.promote(
                services.catalog, registry, series_id, version, actor=who, reason=reason, policies=policies
            )
            return Move(series_id=series_id, cycle=cycle, champion=version)

        return await call(move)

    @strawberry.mutation(
        description="Bring back the series' champion before the current one (one step back); audited.",
        permission_classes=[TokenRequired],
    )
    async def rollback(self, info: Info, series_id: str, reason: str = "") -> Move:
        services, who = info.context.services, actor(info)

        def move() -> Move:
            registry = _registry(services)
            cycle = moves.rollback(services.catalog, registry, series_id, actor=who, reason=reason)
            return Move(
                series_id=series_id, cycle=cycle, champion=registry.aliases(series_id).get("champion")
            )

        return await call(move)


@strawberry.type
class ControllerEvent:
    id: int
    at: datetime
    actor: str
    action: str = strawberry.field(
        description="retrain.triggered, challenger.registered, promotion.decided, promotion.rejected, "
        "model.promote, champion.swapped, promotion.confirmed, rollback.decided, model.rollback, ..."
    )
    series_id: str = strawberry.field(description="the series (policy/<name> for a policy's change)")
    detail: JSON = strawberry.field(description="the reason and the numbers of the decision")


_EVENT_SCHEMA = pa.schema(
    [("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC")), ("actor", pa.string()),
     ("action", pa.string()), ("target", pa.string()), ("detail", pa.string())]
)  # fmt: skip


class ControlEventFeed:
    """The controller's audit entries newer than the previous poll (one poller for every subscriber)."""

    def __init__(self, services: GatewayServices) -> None:
        self._catalog = services.catalog
        self._after = self._catalog.last_audit_id()

    def poll(self) -> pa.Table:
        """The new events (oldest first; maybe none)."""
        rows = self._catalog.control_events(self._after)
        if not rows:
            return _EVENT_SCHEMA.empty_table()
        self._after = rows[-1]["id"]
        for row in rows:
            row["detail"] = json.dumps(row["detail"])
        return pa.Table.from_pylist(rows, schema=_EVENT_SCHEMA)


def _event(row: dict[str, Any]) -> ControllerEvent:
    return ControllerEvent(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        series_id=row["target"],
        detail=JSON(json.loads(row["detail"])),
    )


@strawberry.type
class ControlSubscription:
    @strawberry.subscription(
        description="The controller's decisions and moves as they happen (of one series, or all; polled)."
    )
    async def controller_events(
        self, info: Info, series_id: str | None = None, interval_ms: int = 1000
    ) -> AsyncGenerator[list[ControllerEvent], None]:
        interval = check_interval(interval_ms)
        wanted = None if series_id is None else str(SeriesId.parse(series_id))
        services = info.context.services
        async with services.live.subscribe(
            ("controller",), partial(ControlEventFeed, services), interval
        ) as feed:
            async for table in feed:
                events = [_event(row) for row in table.to_pylist() if wanted in (None, row["target"])]
                if events:
                    yield events
