"""Retention at the gateway: the original REST API, and GraphQL queries and token-guarded mutations.

REST, as the original retention service answered it (same paths, fields, statuses and messages):

* ``GET /retention/period?condition=backup|disposal`` → 200 ``{condition, period, startDate}``
  (``startDate`` for backup only), or 400 ``{"message": ...}``;
* ``PUT /retention/period {startDate, period, condition}`` → 204, or 400 ``{"message": ...}``.
  Like the original, a change runs a retention pass at once (after the answer). The original had no
  authentication; when the gateway has a token, the PUT needs it too.

GraphQL: :class:`RetentionQuery` (policies, holds, the dry-run plan, storage by target, the audit
log, the trash) and :class:`RetentionMutation` (set/delete a policy, place/lift a hold, apply a
plan, undo a run, restore archives), merged into the schema by :mod:`sparkhu.gateway.schema`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import strawberry
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.scalars import JSON

from sparkhu.errors import AuthError, GatewayError, InputError, SparkhuError
from sparkhu.gateway.auth import check_token
from sparkhu.gateway.errors import error_response
from sparkhu.gateway.types import Info, TokenRequired, actor, call
from sparkhu.retention import archive, periods, policies
from sparkhu.retention.apply import apply_plan, run, trash_runs, undo
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import load_plan, make_plan
from sparkhu.retention.storage import usage

log = logging.getLogger(__name__)

__all__ = ["RetentionMutation", "RetentionQuery", "get_period", "put_period"]


def _ctx(services: Any) -> RetentionContext:
    ctx: RetentionContext | None = getattr(services, "retention", None)
    if ctx is None:
        raise GatewayError("retention is not configured for this gateway")
    return ctx


# --- REST (the original API) -----------------------------------------------------------------


def _message(text: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"message": text}, status_code=status)


async def get_period(request: Request) -> Response:
    """``GET /retention/period?condition=backup|disposal``."""
    try:
        body = await call(
            periods.get_period, _ctx(request.app.state.services), request.query_params.get("condition")
        )
    except periods.PeriodError as exc:
        return _message(exc.reason)
    return JSONResponse(body)


async def put_period(request: Request) -> Response:
    """``PUT /retention/period {startDate, period, condition}`` → 204 or 400 ``{message}``."""
    services = request.app.state.services
    if services.settings.token is not None:
        try:
            check_token(services.settings.token, request.headers.get("authorization"))
        except AuthError as exc:
            return error_response(exc)
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return _message("invalid request body, expected JSON {startDate, period, condition}")
    ctx = _ctx(services)
    try:
        await call(periods.put_period, ctx, body)
    except periods.PeriodError as exc:
        return _message(exc.reason)
    except SparkhuError as exc:
        return _message(str(exc))
    return Response(status_code=204, background=BackgroundTask(_run_now, ctx))


def _run_now(ctx: RetentionContext) -> None:
    """A changed policy runs at once, as in the original; a failure is logged (the change stands)."""
    try:
        run(ctx, actor="rest")
    except SparkhuError as exc:
        log.error("retention pass after a policy change failed: %s", exc)


# --- GraphQL ------------------------------------------------------------------------------------


@strawberry.type
class RetentionPolicy:
    name: str
    target: str
    match: str
    series: str
    action: str
    keep_days: float
    keep_months: int
    start_date: str | None
    max_bytes: float | None
    keep_versions: int | None
    levels: JSON
    enabled: bool

    @classmethod
    def of(cls, policy: policies.Policy) -> RetentionPolicy:
        data = policy.model_dump(mode="json")
        return cls(**{**data, "levels": JSON(data["levels"])})


@strawberry.type
class LegalHold:
    name: str
    target: str
    match: str
    series: str
    reason: str


@strawberry.type
class PlanItem:
    id: str
    policy: str
    target: str
    name: str
    action: str
    mode: str
    key: str
    rows: float
    bytes: float
    detail: JSON


@strawberry.type
class RetentionPlan:
    id: str
    rows: float
    bytes: float
    partitions: int
    items: list[PlanItem]
    protected: JSON


@strawberry.type
class StorageUsage:
    target: str
    name: str
    bytes: float | None
    rows: float | None
    partitions: int | None


@strawberry.type
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: JSON


@strawberry.type
class RetentionRun:
    run_id: str
    plan_id: str
    done: int
    skipped: JSON
    rows: float
    bytes: float
    archived: float


def _plan(plan: Any) -> RetentionPlan:
    items = [
        PlanItem(
            id=i.id,
            policy=i.policy,
            target=i.target,
            name=i.name,
            action=i.action,
            mode=i.mode,
            key=i.key,
            rows=i.rows,
            bytes=i.bytes,
            detail=JSON({k: v for k, v in i.detail.items() if k != "manifest"}),
        )
        for i in plan.items
    ]
    return RetentionPlan(
        id=plan.id,
        rows=plan.rows,
        bytes=plan.bytes,
        partitions=plan.partitions,
        items=items,
        protected=JSON(plan.protected),
    )


@strawberry.type
class RetentionQuery:
    @strawberry.field(
        description="The retention policies in force (sparkhu.toml, then those set at run time)."
    )
    async def retention_policies(self, info: Info) -> list[RetentionPolicy]:
        found = await call(policies.policies, _ctx(info.context.services))
        return [RetentionPolicy.of(p) for p in found]

    @strawberry.field(description="The legal holds in force.")
    async def legal_holds(self, info: Info) -> list[LegalHold]:
        found = await call(policies.holds, _ctx(info.context.services))
        return [LegalHold(**h.model_dump()) for h in found]

    @strawberry.field(description="A dry-run retention plan (nothing is touched; apply it by id).")
    async def retention_plan(self, info: Info) -> RetentionPlan:
        return _plan(await call(make_plan, _ctx(info.context.services)))

    @strawberry.field(description="What each storage target holds now.")
    async def retention_storage(self, info: Info) -> list[StorageUsage]:
        return [StorageUsage(**u) for u in await call(usage, _ctx(info.context.services))]

    @strawberry.field(description="The audit log, newest first.")
    async def retention_audit(self, info: Info, limit: int = 50) -> list[AuditEntry]:
        entries = await call(lambda: _ctx(info.context.services).catalog.audit_log(limit=limit))
        return [AuditEntry(**{**e, "detail": JSON(e["detail"])}) for e in entries]

    @strawberry.field(description="Runs whose deleted files are still in the trash (undoable).")
    async def retention_trash(self, info: Info) -> JSON:
        return JSON(await call(trash_runs, _ctx(info.context.services)))


def _fields(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError("expected an object of fields", field=name)
    return value


@strawberry.type
class RetentionMutation:
    @strawberry.mutation(
        description="Set (store) a retention policy; fields as in sparkhu.toml.",
        permission_classes=[TokenRequired],
    )
    async def set_retention_policy(self, info: Info, policy: JSON) -> RetentionPolicy:
        ctx = _ctx(info.context.services)
        return RetentionPolicy.of(
            await call(lambda: policies.set_policy(ctx, _fields(policy, "policy"), actor=actor(info)))
        )

    @strawberry.mutation(description="Delete a stored retention policy.", permission_classes=[TokenRequired])
    async def delete_retention_policy(self, info: Info, name: str) -> bool:
        ctx = _ctx(info.context.services)
        await call(lambda: policies.delete_policy(ctx, name, actor=actor(info)))
        return True

    @strawberry.mutation(description="Place a legal hold.", permission_classes=[TokenRequired])
    async def set_legal_hold(self, info: Info, hold: JSON) -> LegalHold:
        ctx = _ctx(info.context.services)
        placed = await call(lambda: policies.set_hold(ctx, _fields(hold, "hold"), actor=actor(info)))
        return LegalHold(**placed.model_dump())

    @strawberry.mutation(description="Lift a legal hold.", permission_classes=[TokenRequired])
    async def release_legal_hold(self, info: Info, name: str) -> bool:
        ctx = _ctx(info.context.services)
        await call(lambda: policies.release_hold(ctx, name, actor=actor(info)))
        return True

    @strawberry.mutation(description="Execute a stored plan exactly.", permission_classes=[TokenRequired])
    async def apply_retention_plan(self, info: Info, plan_id: str) -> RetentionRun:
        ctx = _ctx(info.context.services)
        result = await call(lambda: apply_plan(ctx, load_plan(ctx, plan_id), actor=actor(info)))
        return RetentionRun(
            run_id=result.run_id,
            plan_id=result.plan_id,
            done=len(result.done),
            skipped=JSON(result.skipped),
            rows=result.rows,
            bytes=result.bytes,
            archived=result.archived,
        )

    @strawberry.mutation(
        description="Bring back the files a run deleted (soft-delete window).",
        permission_classes=[TokenRequired],
    )
    async def undo_retention_run(self, info: Info, run_id: str) -> int:
        ctx = _ctx(info.context.services)
        return await call(lambda: undo(ctx, run_id, actor=actor(info)))

    @strawberry.mutation(
        description="Restore archived rows of a zone/dataset into the lake; returns rows.",
        permission_classes=[TokenRequired],
    )
    async def restore_archive(self, info: Info, zone: str | None = None, dataset: str | None = None) -> float:
        ctx = _ctx(info.context.services)
        return (await call(lambda: archive.restore(ctx, zone=zone, dataset=dataset, actor=actor(info))))[1]
