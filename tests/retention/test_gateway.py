"""The gateway's retention: the original REST API against its own request examples, and GraphQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.retention.conftest import DATASET, mark_processed, minutely

from sparkhu.config import GatewaySettings
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices
from sparkhu.retention import archive
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.policies import policies
from sparkhu.storage.predictions import PredictionStore

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


pytestmark = pytest.mark.anyio


def client_of(ctx: RetentionContext, token: str | None = None) -> httpx.AsyncClient:
    services = GatewayServices(
        ctx.lake,
        ctx.catalog,
        PredictionStore(ctx.catalog.engine),
        settings=GatewaySettings(token=token),
        retention=ctx,
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://gateway"
    )


@pytest.fixture
async def rest(ctx: RetentionContext) -> AsyncIterator[httpx.AsyncClient]:
    now = datetime.now(UTC)
    ctx.clock = lambda: int(now.timestamp() * 1_000_000)
    async with client_of(ctx) as client:
        yield client


async def test_get_before_any_put_answers_no_policy(rest):
    assert (await rest.get("/retention/period", params={"condition": "backup"})).json() == {
        "condition": "backup",
        "period": "no policy",
        "startDate": None,
    }
    assert (await rest.get("/retention/period", params={"condition": "disposal"})).json() == {
        "condition": "disposal",
        "period": "no policy",
    }


async def test_the_originals_examples_round_trip(rest, ctx):
    example = {"condition": "backup", "period": "4 months", "startDate": "2022-01-01"}  # the original's
    answer = await rest.put("/retention/period", json=example)
    assert answer.status_code == 204 and answer.content == b""
    assert (await rest.get("/retention/period", params={"condition": "backup"})).json() == example
    assert (
        await rest.put("/retention/period", json={"condition": "disposal", "period": "1 years"})
    ).status_code == 204
    assert (await rest.get("/retention/period", params={"condition": "disposal"})).json() == {
        "condition": "disposal",
        "period": "1 years",
    }
    by_name = {p.name: p for p in policies(ctx)}
    assert (by_name["backup"].target, by_name["backup"].action, by_name["backup"].keep_months) == (
        "raw",
        "archive",
        4,
    )
    assert by_name["backup"].start_date == "2022-01-01"
    assert (by_name["disposal"].target, by_name["disposal"].keep_months) == ("archive", 12)
    # a later PUT without startDate keeps it, as the original did
    assert (
        await rest.put("/retention/period", json={"condition": "backup", "period": "2 years"})
    ).status_code == 204
    assert (await rest.get("/retention/period", params={"condition": "backup"})).json()[
        "startDate"
    ] == "2022-01-01"
    assert (
        await rest.put("/retention/period", json={"condition": "backup", "period": "no policy"})
    ).status_code == 204
    assert not {p.name: p for p in policies(ctx)}["backup"].enabled


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"condition": "backup", "period": "4 weeks"},
            "invalid period, expected [num years | num months | no policy]",
        ),
        ({"condition": "backup", "period": "four months"}, "invalid period"),
        ({"condition": "backup", "period": "-1 months"}, "invalid period"),
        ({"condition": "backup", "period": "0 years"}, "invalid period"),
        ({"condition": "backup", "period": "1.5 months"}, "invalid period"),
        ({"condition": "backup"}, "invalid period"),
        (
            {"condition": "backup", "period": "1 months", "startDate": "2999-01-01"},
            "invalid startDate, expected yyyy-MM-dd, startDate must be a date in the past.",
        ),
        ({"condition": "backup", "period": "1 months", "startDate": "01/02/2022"}, "invalid startDate"),
        ({"condition": "backup", "period": "1 months", "startDate": ""}, "invalid startDate"),
        ({"condition": "disposal"}, "invalid request, period fields must be given"),
        ({"condition": "disposal", "period": "3 days"}, "invalid period"),
        (
            {"condition": "archive", "period": "1 months"},
            "invalid condition, expected condition: [backup | disposal]",
        ),
        ({"period": "1 months"}, "invalid condition"),
        ([1, 2], "invalid request body"),
    ],
)
async def test_bad_put_is_400_with_the_originals_message(rest, body: Any, message: str):
    answer = await rest.put("/retention/period", json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(message)
    assert (await rest.get("/retention/period", params={"condition": "backup"})).json()[
        "period"
    ] == "no policy"


async def test_bad_get_and_malformed_json(rest):
    for params in ({"condition": "nope"}, {}):
        answer = await rest.get("/retention/period", params=params)
        assert answer.status_code == 400
        assert answer.json() == {"message": "invalid request, expected condition: [backup | disposal]"}
    answer = await rest.put(
        "/retention/period", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400 and "message" in answer.json()


async def test_a_put_runs_retention_at_once(rest, ctx):
    now = datetime.fromtimestamp(ctx.now() / 1e6, UTC)
    ctx.lake.write("raw", DATASET, minutely(now - timedelta(days=70), 10, every_s=3600))
    mark_processed(ctx.catalog, DATASET, (now - timedelta(days=71)).date(), now.date())
    assert (
        await rest.put("/retention/period", json={"condition": "backup", "period": "1 months"})
    ).status_code == 204
    manifests = archive.manifests(ctx)
    assert manifests and sum(m["rows"] for m in manifests) == 10 * 24 * 3


async def test_put_needs_the_token_when_the_gateway_has_one(ctx):
    async with client_of(ctx, token=TOKEN) as client:
        body = {"condition": "disposal", "period": "2 months"}
        assert (await client.put("/retention/period", json=body)).status_code == 401
        assert (await client.put("/retention/period", json=body, headers=AUTH)).status_code == 204


async def gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    answer = await client.post("/graphql", json={"query": query, "variables": variables or {}}, **kw)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_graphql_queries_and_token_guarded_mutations(ctx):
    now = datetime.fromtimestamp(ctx.now() / 1e6, UTC)
    ctx.lake.write("raw", DATASET, minutely(now - timedelta(days=6), 6, every_s=900))
    mark_processed(ctx.catalog, DATASET, (now - timedelta(days=7)).date(), now.date())
    async with client_of(ctx, token=TOKEN) as client:
        mutation = "mutation($p: JSON!) { setRetentionPolicy(policy: $p) { name target keepDays } }"
        policy = {"name": "raw-3d", "target": "raw", "keep_days": 3}
        denied = await gql(client, mutation, {"p": policy})
        assert denied["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        bad = await gql(client, mutation, {"p": {**policy, "keep_days": -1}}, headers=AUTH)
        assert (
            bad["errors"][0]["extensions"]["code"] == "BAD_INPUT"
            and "keep_days" in bad["errors"][0]["message"]
        )
        ok = await gql(client, mutation, {"p": policy}, headers=AUTH)
        assert ok["data"]["setRetentionPolicy"] == {"name": "raw-3d", "target": "raw", "keepDays": 3.0}
        plan = await gql(
            client, "{ retentionPlan { id rows bytes partitions items { id action mode key rows } } }"
        )
        plan = plan["data"]["retentionPlan"]
        assert plan["rows"] > 0 and plan["items"]
        run = (
            await gql(
                client,
                "mutation($id: String!) { applyRetentionPlan(planId: $id) { runId rows done } }",
                {"id": plan["id"]},
                headers=AUTH,
            )
        )["data"]["applyRetentionPlan"]
        assert run["rows"] == plan["rows"] and run["done"] == len(plan["items"])
        storage = (await gql(client, "{ retentionStorage { target name bytes rows partitions } }"))["data"]
        assert {"raw", "archive", "trash", "runs"} <= {s["target"] for s in storage["retentionStorage"]}
        audit = (await gql(client, "{ retentionAudit(limit: 100) { action target detail } }"))["data"]
        audit = audit["retentionAudit"]
        assert {"policy.set", "run.start", "delete", "run.finish"} <= {a["action"] for a in audit}
        undone = await gql(
            client, "mutation($r: String!) { undoRetentionRun(runId: $r) }", {"r": run["runId"]}, headers=AUTH
        )
        assert undone["data"]["undoRetentionRun"] > 0
        names = (await gql(client, "{ retentionPolicies { name } legalHolds { name } }"))["data"]
        assert names == {"retentionPolicies": [{"name": "raw-3d"}], "legalHolds": []}
