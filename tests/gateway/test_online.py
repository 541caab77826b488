"""GraphQL ``onlineScores``, ``onlineScoreSummary`` and ``driftEvents`` over a real scorer's writes."""

from __future__ import annotations

import json

import httpx
import pytest
from tests.gateway.conftest import BAND, SID, Stack, actual_points, error_code, gql

from sparkhu.online.scorer import OnlineScorer
from sparkhu.storage.predictions import FORECAST_SCHEMA, Checkpoint

pytestmark = pytest.mark.integration
anyio = pytest.mark.anyio


@pytest.fixture
def scored(stack: Stack) -> Stack:
    """The seeded forecasts (origins T0+119 and T0+120 min, 20 steps) scored against minutes 100..179."""
    scorer = OnlineScorer(stack.catalog, "online/test", window=30)
    scorer.observe(actual_points(SID, 100, 80))
    stack.predictions.write(
        FORECAST_SCHEMA.empty_table(), checkpoint=Checkpoint("online/test", {}, scorer.save)
    )
    return stack


@anyio
async def test_online_scores_and_their_summary(scored: Stack, client: httpx.AsyncClient):
    query = """query($id: String!) {
      onlineScores(seriesId: $id, step: 1) { model step originTs targetTs actual forecast error covered }
      all: onlineScores(seriesId: $id, model: "ses") { step }
      onlineScoreSummary(seriesId: $id) { model step count mae rmse coverage }
      driftEvents(seriesId: $id) { kind } }"""
    body = await gql(client, query, {"id": SID})
    assert "errors" not in body, body
    data = body["data"]
    one = data["onlineScores"]
    # origin 119 forecasts 2000 for minute 120 (actual 1120); origin 120 forecasts 3000 for minute 121
    assert [(r["forecast"], r["actual"], r["error"]) for r in one] == [
        (2000.0, 1120.0, -880.0),
        (3000.0, 1121.0, -1879.0),
    ]
    assert [r["covered"] for r in one] == [False, False]  # the band is ±150 W
    assert len(data["all"]) == 40
    summary = {s["step"]: s for s in data["onlineScoreSummary"]}
    assert set(summary) == set(range(1, 21)) and summary[1]["count"] == 2
    assert summary[1]["mae"] == pytest.approx((880.0 + 1879.0) / 2)
    assert summary[1]["rmse"] == pytest.approx(((880.0**2 + 1879.0**2) / 2) ** 0.5)
    assert summary[1]["coverage"] == 0.0 and BAND < 880
    assert data["driftEvents"] == []


@anyio
@pytest.mark.parametrize(
    ("arguments", "code", "needle"),
    [
        ('seriesId: "not a series"', "BAD_INPUT", "series_id"),
        ('seriesId: "nowhere/to/be"', "NOT_FOUND", "nowhere/to/be"),
        (f"seriesId: {json.dumps(SID)}, step: 0", "BAD_INPUT", "step"),
        (f'seriesId: {json.dumps(SID)}, since: "2024-03-02", until: "2024-03-01"', "BAD_INPUT", "since"),
        (f'seriesId: {json.dumps(SID)}, since: "yesterday"', "BAD_INPUT", "yesterday"),
        (f"seriesId: {json.dumps(SID)}, limit: 0", "BAD_INPUT", "limit"),
    ],
)
async def test_bad_arguments_are_named(scored: Stack, client: httpx.AsyncClient, arguments, code, needle):
    body = await gql(client, f"{{ onlineScores({arguments}) {{ step }} }}")
    assert error_code(body) == code, body
    assert len(body["errors"]) == 1 and needle in body["errors"][0]["message"]


@anyio
@pytest.mark.parametrize(
    ("arguments", "code", "needle"),
    [
        ('seriesId: "a/b"', "BAD_INPUT", "series_id"),
        ('seriesId: "nowhere/to/be"', "NOT_FOUND", "nowhere/to/be"),
        ("limit: 0", "BAD_INPUT", "limit"),
        ('since: "not a time"', "BAD_INPUT", "not a time"),
    ],
)
async def test_bad_drift_arguments_are_named(
    scored: Stack, client: httpx.AsyncClient, arguments, code, needle
):
    body = await gql(client, f"{{ driftEvents({arguments}) {{ kind }} }}")
    assert error_code(body) == code, body
    assert len(body["errors"]) == 1 and needle in body["errors"][0]["message"]
