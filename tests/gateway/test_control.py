"""The controller at the gateway: policies, model history, token-guarded moves, bad input as BAD_INPUT."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from tests.gateway.conftest import SID, TOKEN, Stack, error_code, gql

from sparkhu.forecast.models import make_model
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.gateway.app import create_app

AUTH = {"authorization": f"Bearer {TOKEN}"}
anyio = pytest.mark.anyio


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    tmp = tmp_path_factory.mktemp("gql-registry")
    return ModelRegistry(f"sqlite:///{tmp}/mlflow.db", artifact_root=tmp / "art")


@pytest.fixture
async def client(stack: Stack, registry: ModelRegistry) -> Any:
    registry.catalog = stack.catalog  # the history goes to this test's catalog
    app = create_app(stack.services(registry=lambda: registry))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        yield c


SET = "mutation($p: JSON!) { setPolicy(policy: $p) { name series margin minPoints origin } }"


@anyio
async def test_graphql_mutations_need_the_token_and_bad_input_is_bad_input(
    client: httpx.AsyncClient, registry: ModelRegistry
) -> None:
    policy = {"name": "gql", "series": "test/*", "gate": {"margin": 0.1, "min_points": 7}}
    for mutation in (
        ('mutation { deletePolicy(name: "gql") }', None),
        ('mutation { retrainNow(seriesId: "test/a/b") { cycle } }', None),
        ('mutation { promote(seriesId: "test/a/b", version: 1) { cycle } }', None),
        ('mutation { rollback(seriesId: "test/a/b") { cycle } }', None),
        (SET, {"p": policy}),
    ):
        body = await gql(client, mutation[0], mutation[1])
        assert error_code(body) == "UNAUTHENTICATED", mutation
    body = await gql(client, SET, {"p": {**policy, "gate": {"margin": -1}}}, headers=AUTH)
    assert error_code(body) == "BAD_INPUT"
    assert (
        body["errors"][0]["message"]
        == "policy: gate.margin: Input should be greater than or equal to 0 (got -1)"
    )
    body = await gql(client, SET, {"p": [1, 2]}, headers=AUTH)
    assert (
        error_code(body) == "BAD_INPUT"
        and "expected an object of policy fields" in body["errors"][0]["message"]
    )
    body = await gql(client, SET, {"p": policy}, headers=AUTH)
    assert body["data"]["setPolicy"] == {
        "name": "gql",
        "series": "test/*",
        "margin": 0.1,
        "minPoints": 7,
        "origin": "catalog",
    }
    body = await gql(client, "{ policies { name window body } }")
    assert [(p["name"], p["window"], p["body"]["gate"]["min_points"]) for p in body["data"]["policies"]] == [
        ("gql", "30d", 7)
    ]
    body = await gql(client, 'mutation { retrainNow(seriesId: "other/a/b") { cycle } }', headers=AUTH)
    assert (
        error_code(body) == "BAD_INPUT"
        and "no training policy covers other/a/b" in body["errors"][0]["message"]
    )
    body = await gql(client, 'mutation { retrainNow(seriesId: "no-series") { cycle } }', headers=AUTH)
    assert error_code(body) == "BAD_INPUT"
    # promote and roll back SID by GraphQL; the history says who, when and why
    fit = make_model("ses", alpha=0.5).fit(np.arange(10.0))
    first = registry.log_training(SID, fit, alias="champion").version
    second = registry.log_training(SID, fit).version
    body = await gql(
        client,
        f'mutation {{ promote(seriesId: "{SID}", version: {second}, reason: "better") {{ champion }} }}',
        headers=AUTH,
    )
    assert body["data"]["promote"] == {"champion": second}
    body = await gql(client, f'mutation {{ rollback(seriesId: "{SID}") {{ champion }} }}', headers=AUTH)
    assert body["data"]["rollback"] == {"champion": first}
    body = await gql(client, f'{{ modelHistory(seriesId: "{SID}") {{ version event actor reason until }} }}')
    history = body["data"]["modelHistory"]
    assert [(h["version"], h["event"]) for h in history] == [
        (first, "train"),
        (second, "promote"),
        (first, "rollback"),
    ]
    assert history[1]["reason"] == "better" and history[1]["actor"].startswith("token")
    assert history[-1]["until"] is None and history[0]["until"] is not None
    body = await gql(
        client, f'mutation {{ promote(seriesId: "{SID}", version: 99) {{ champion }} }}', headers=AUTH
    )
    assert error_code(body) == "NOT_FOUND"
    body = await gql(client, '{ modelHistory(seriesId: "a/b") { version } }')
    assert error_code(body) == "BAD_INPUT"
    assert (await gql(client, 'mutation { deletePolicy(name: "gql") }', headers=AUTH))["data"] == {
        "deletePolicy": True
    }
    body = await gql(client, 'mutation { deletePolicy(name: "gql") }', headers=AUTH)
    assert error_code(body) == "NOT_FOUND"
