"""Query cost: one request must never stall the gateway (issue 10, item 5).

The cost analysis is checked on the real schema (and on a schema with a merged-in module it
has never seen); the refusal and the event loop's freedom over a real uvicorn server.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx
import pyarrow as pa
import pytest
import strawberry
from graphql import parse
from strawberry.tools import merge_types
from tests.gateway.conftest import N_POINTS, SID, Stack, actual_points, error_code, gql

from sparkhu.config import GatewaySettings, Settings
from sparkhu.gateway.app import create_app
from sparkhu.gateway.cost import QueryCost, document_cost
from sparkhu.gateway.schema import Mutation, Query, build_schema
from sparkhu.storage.lake import Lake

anyio = pytest.mark.anyio

MAX = 100_000
SCHEMA = build_schema()._schema


def cost(query: str, variables: dict[str, Any] | None = None, operation: str | None = None) -> int:
    return document_cost(SCHEMA, parse(query), max_points=MAX, variables=variables, operation_name=operation)


def amplified(n: int, limit: int = 100_000) -> str:
    """The issue's request: ``n`` aliased pointColumns of ``limit`` points each."""
    fields = " ".join(
        f'a{i}: pointColumns(seriesId: "{SID}", limit: {limit}) {{ ts value }}' for i in range(n)
    )
    return "{ " + fields + " }"


# --- the estimate ----------------------------------------------------------------------


def test_aliases_are_counted_each():
    one = cost(amplified(1))
    assert one == 100_000 + 2
    assert cost(amplified(100)) == 100 * one


def test_a_missing_or_null_limit_counts_max_points_and_schema_defaults_apply():
    assert cost(f'{{ pointColumns(seriesId: "{SID}") {{ ts }} }}') == MAX + 1
    assert cost(f'{{ pointColumns(seriesId: "{SID}", limit: null) {{ ts }} }}') == MAX + 1
    assert cost("{ series { id } }") == 100 + 100  # series(limit = 100): 100 rows of one field
    assert cost("{ runs(limit: 3) { runId kind } }") == 3 + 2 * 3


def test_list_fields_weigh_their_rows_on_every_field_below():
    objects = cost(f'{{ points(seriesId: "{SID}", limit: 1000) {{ ts value }} }}')
    columns = cost(f'{{ pointColumns(seriesId: "{SID}", limit: 1000) {{ ts value }} }}')
    assert (objects, columns) == (1000 + 2 * 1000, 1000 + 2)
    nested = cost("{ series(limit: 10) { id runs(limit: 5) { runId series { runs(limit: 2) { kind } } } } }")
    # 10 series, each: id + 5 runs, each: runId + series + 2 runs, each: kind
    assert nested == 10 + 10 * (1 + 5 + 5 * (1 + 1 + 2 + 2 * 1))


def test_limits_given_as_variables_inputs_and_fragments():
    query = """query($n: Int, $in: PredictionInput!) {
      ...P
      featurePrediction(input: $in) { length feature { timestamps } }
    }
    fragment P on Query { pointColumns(seriesId: "x/y/z", limit: $n) { ts } }"""
    given = {
        "n": 7,
        "in": {"dbName": "a", "tableName": "b", "featureName": "c", "start": "2024-01-01", "reqNum": 9},
    }
    assert cost(query, given) == (7 + 1) + (9 + 1 + 1 + 1)
    without = dict(given, n=None, **{"in": {**given["in"], "reqNum": None}})
    assert cost(query, without) == (MAX + 1) + (MAX + 3)
    inline = (
        '{ featurePrediction(input: {dbName: "a", tableName: "b", featureName: "c", start: "2024-01-01",'
        " reqNum: 4}) { length } }"
    )
    assert cost(inline) == 4 + 1


def test_variable_defaults_and_malformed_limits_count():
    assert cost("query($n: Int = 12) { runs(limit: $n) { runId } }") == 12 + 12
    assert (
        cost('query($n: Int) { pointColumns(seriesId: "x/y/z", limit: $n) { ts } }', {"n": "many"}) == MAX + 1
    )


def test_only_the_operation_that_runs_is_counted():
    doc = "query Cheap { runs(limit: 1) { runId } } query Dear { series(limit: 10000) { id } }"
    assert cost(doc, operation="Cheap") == 2
    assert cost(doc, operation="Dear") == 20_000
    assert cost(doc) == 0  # two operations and no name: nothing runs (execution says why)


@strawberry.type
class Thing:
    name: str


@strawberry.type
class ElsewhereQuery:
    @strawberry.field
    def things(self, first: int | None = None) -> list[Thing]:
        return [Thing(name="a")] * (first or 1)


def test_fields_of_modules_merged_later_are_costed_without_knowing_them():
    merged = merge_types("Query", (Query, ElsewhereQuery))
    schema = strawberry.Schema(
        query=merged, mutation=Mutation, extensions=[lambda: QueryCost(budget=50, max_points=MAX)]
    )
    assert document_cost(schema._schema, parse("{ things(first: 20) { name } }"), max_points=MAX) == 40
    assert schema.execute_sync("{ things(first: 20) { name } }").errors is None
    refused = schema.execute_sync("{ a: things(first: 20) { name } b: things(first: 20) { name } }")
    assert refused.errors and refused.errors[0].extensions == {
        "code": "COST_EXCEEDED",
        "cost": 80,
        "budget": 50,
    }
    unbounded = schema.execute_sync("{ things { name } }")  # no `first`: max_points rows
    assert unbounded.errors and unbounded.errors[0].extensions["cost"] == 2 * MAX


# --- refusal, before resolving ---------------------------------------------------------


class CountingLake(Lake):
    """The real lake, counting reads (to prove a refused request never reached storage)."""

    reads = 0

    def read(self, *args: Any, **kwargs: Any) -> pa.Table:
        type(self).reads += 1
        return super().read(*args, **kwargs)


@anyio
async def test_over_budget_requests_are_refused_before_any_resolver(stack: Stack):
    lake = CountingLake(stack.lake.root)
    CountingLake.reads = 0
    services = stack.services(settings=GatewaySettings(max_query_cost=100_002))
    services.lake = lake
    app = create_app(services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        began = time.perf_counter()
        body = await gql(client, amplified(100))
        elapsed = time.perf_counter() - began
        assert error_code(body) == "COST_EXCEEDED"
        error = body["errors"][0]
        assert error["extensions"] == {"code": "COST_EXCEEDED", "cost": 100 * 100_002, "budget": 100_002}
        assert "10,000,200" in error["message"] and "100,002" in error["message"]
        assert body.get("data") is None
        assert CountingLake.reads == 0
        assert elapsed < 1.0
        # at the budget exactly, it runs (and reads)
        at_budget = await gql(client, amplified(1))
        assert len(at_budget["data"]["a0"]["ts"]) == N_POINTS and CountingLake.reads == 1


def test_the_budget_is_a_setting(tmp_path):
    settings = Settings.load(
        toml_path=None, env={"SPARKHU_HOME": str(tmp_path), "SPARKHU_GATEWAY__MAX_QUERY_COST": "5000"}
    )
    assert settings.gateway.max_query_cost == 5000
    with pytest.raises(Exception, match="max_query_cost"):
        Settings.load(
            toml_path=None, env={"SPARKHU_HOME": str(tmp_path), "SPARKHU_GATEWAY__MAX_QUERY_COST": "0"}
        )


# --- the event loop stays free ---------------------------------------------------------


@pytest.mark.timeout(120)
def test_healthz_answers_while_an_expensive_query_runs(stack: Stack, serve):
    many = 20_000
    stack.add_points(actual_points(SID, N_POINTS, many))
    url = serve(create_app(stack.services()))
    # in budget (4 × 180k = 720k), and seconds of Python: 240k point objects completed and encoded
    query = (
        "{ "
        + " ".join(f'a{i}: points(seriesId: "{SID}", limit: {many}) {{ ts value }}' for i in range(4))
        + " }"
    )
    outcome: dict[str, Any] = {}

    def expensive() -> None:
        began = time.perf_counter()
        response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=120)
        outcome["done"] = time.perf_counter()
        outcome["elapsed"] = outcome["done"] - began
        # counted, not parsed: json.loads would hold this process's GIL, which the server shares
        outcome["rows"] = response.content.count(b'"value":')

    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200  # connection and imports warm
        worker = threading.Thread(target=expensive)
        worker.start()
        time.sleep(0.3)
        latencies = []
        while worker.is_alive() and len(latencies) < 40:
            began = time.perf_counter()
            assert client.get("/healthz").json() == {"status": "ok"}
            latencies.append((time.perf_counter() - began, time.perf_counter()))
            time.sleep(0.05)
        worker.join()
    response_rows = outcome["rows"]
    assert response_rows == 4 * many
    during = [latency for latency, at in latencies if at < outcome["done"]]
    assert len(during) >= 3, f"the expensive query ({outcome['elapsed']:.2f} s) ended before the probes"
    # Blocked, the loop would answer after the query's whole completion (seconds); free, at once.
    # Shared CI machines stretch every figure, so the worst probe is judged against the query.
    assert statistics.median(during) < 0.2, f"/healthz took {sorted(during)} s while a query ran"
    assert max(during) < max(0.5, outcome["elapsed"] / 4), (outcome["elapsed"], sorted(during))
