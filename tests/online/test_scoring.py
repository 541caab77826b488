"""Online evaluation: the predictor's forecasts are scored once, when their targets arrive.

The scores are checked against the raw forecasts and points recomputed here; a crash between
the store and the bus commit, and polls cut differently, leave the same scores and detector
state as an uninterrupted run.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from tests.online.conftest import MIN, SERIES, TOPIC
from tests.online.test_checkpoint import drain, make, minutes

from sparkhu.errors import InputError
from sparkhu.online.drift import KINDS, drift_events
from sparkhu.online.scorer import OnlineScorer
from sparkhu.online.scoring import live_mae, scores, summary
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, schema
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import publish_points
from sparkhu.timeaxis import from_us

pytestmark = pytest.mark.integration


@pytest.fixture
def catalogs(settings, tmp_path):
    """The session's catalog (under test) and a SQLite reference."""
    with Catalog(settings.storage.catalog) as tested, Catalog(f"sqlite:///{tmp_path}/ref.db") as ref:
        yield tested, ref


def scorer(catalog: Catalog, group: str = "online") -> OnlineScorer:
    return OnlineScorer(catalog, f"{group}/{TOPIC}", window=30)


def all_scores(catalog: Catalog) -> list[tuple]:
    t = schema.online_scores
    with catalog.engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.series_id, t.c.model, t.c.target_ts, t.c.origin_ts))
        return [tuple(r) for r in rows]


def test_every_forecast_is_scored_once_when_its_target_arrives(bus, catalogs):
    tested, _ = catalogs
    store = PredictionStore(tested)
    for minute in range(0, 24, 2):
        publish_points(bus, TOPIC, minutes(minute, 2))
    predictor = make(bus, store, scorer=scorer(tested), max_messages=1)
    drain(predictor)
    predictor.close()
    data = minutes(0, 24)
    last_us = int(data.column("ts").cast("int64").to_numpy().max())
    for sid in SERIES:
        raw = store.raw(sid).to_pylist()
        arrived = [r for r in raw if int(r["target_ts"].timestamp() * 1e6) <= last_us]
        got = scores(tested, sid).to_pylist()
        assert len(got) == len(arrived) > 0
        mine = data.filter(pc.equal(data["series_id"].cast(pa.string()), sid))
        actual = dict(zip(mine.column("ts").to_pylist(), mine.column("value").to_pylist(), strict=True))
        want = {(r["origin_ts"], r["target_ts"]): r for r in arrived}
        for row in got:
            forecast = want[(row["origin_ts"], row["target_ts"])]
            assert row["forecast"] == forecast["value"]
            assert row["actual"] == actual[row["target_ts"]]
            assert row["error"] == pytest.approx(row["actual"] - forecast["value"])
            assert row["sq_error"] == pytest.approx(row["error"] ** 2)
            assert row["covered"] == (forecast["lower"] <= row["actual"] <= forecast["upper"])
            assert row["step"] == forecast["step"]
            assert row["scale"] is not None and row["scale"] > 0
    rows = scores(tested, SERIES[0])
    by_step = {s.step: s for s in summary(tested, SERIES[0])}
    one = rows.filter(pc.equal(rows["step"], 1))
    errors = one.column("error").to_numpy()
    assert by_step[1].count == one.num_rows
    assert by_step[1].mae == pytest.approx(np.abs(errors).mean())
    assert by_step[1].rmse == pytest.approx(np.sqrt((errors**2).mean()))
    mase = np.mean(np.abs(errors) / one.column("scale").to_numpy())
    assert by_step[1].mase == pytest.approx(mase)
    assert by_step[1].coverage == pytest.approx(np.mean(one.column("covered").to_numpy(zero_copy_only=False)))
    last3 = np.abs(errors[-3:]).mean()
    assert live_mae(tested, SERIES[0], "ses", last=3) == pytest.approx(last3)
    assert live_mae(tested, SERIES[0], "naive@v9") is None


def test_a_crash_before_the_commit_and_other_poll_cuts_score_the_same(bus, catalogs):
    tested, reference = catalogs
    for minute in range(0, 30, 2):
        publish_points(bus, TOPIC, minutes(minute, 2))
    uninterrupted = make(bus, PredictionStore(reference), group="ref", scorer=scorer(reference, "ref"))
    drain(uninterrupted)
    uninterrupted.close()

    store = PredictionStore(tested)
    before = make(bus, store, scorer=scorer(tested), max_messages=4)
    for _ in range(3):
        before.run_once(timeout=1.0)
    unstored = before._loop.fetch(timeout=1.0)  # stored, then the process dies before the commit
    before._write(before._absorb(unstored))
    before.close()
    after = make(bus, store, scorer=scorer(tested), max_messages=3)
    drain(after)
    after.close()
    got, want = all_scores(tested), all_scores(reference)
    assert len(got) == len(want) > 0
    assert [r[:5] + r[9:] for r in got] == [r[:5] + r[9:] for r in want]  # keys, step, covered
    floats = np.array([r[5:9] for r in got], dtype=float), np.array([r[5:9] for r in want], dtype=float)
    assert np.allclose(*floats, rtol=1e-9, equal_nan=True)  # actual, forecast, error, scale
    t = schema.online_state
    with tested.engine.connect() as a, reference.engine.connect() as b:
        states = [
            {k: len(v) for k, v in c.execute(sa.select(t.c.key, t.c.value).where(t.c.owner == o)).all()}
            for c, o in ((a, f"scoring:online/{TOPIC}"), (b, f"scoring:ref/{TOPIC}"))
        ]
    assert states[0] == states[1] and set(states[0]) == set(SERIES)


def test_a_level_shift_raises_one_level_event_and_a_restart_keeps_the_detectors(bus, catalogs):
    tested, _ = catalogs
    store = PredictionStore(tested)
    rng = np.random.default_rng(5)
    n, shift_at = 260, 150
    values = 100.0 + rng.normal(0.0, 2.0, n)
    values[shift_at:] += 30.0  # +15 sd
    t0 = 1_700_000_000_000_000

    def publish(lo: int, hi: int) -> None:
        for i in range(lo, hi, 10):
            j = min(hi, i + 10)
            publish_points(bus, TOPIC, points(SERIES[0], t0 + np.arange(i, j) * MIN, values[i:j]))

    publish(0, 140)
    first = make(bus, store, scorer=scorer(tested), window=30, horizon=3)
    drain(first)
    first.close()
    assert drift_events(tested, SERIES[0]) == []
    publish(140, n)
    second = make(bus, store, scorer=scorer(tested), window=30, horizon=3)  # a restart
    drain(second)
    second.close()
    level = drift_events(tested, SERIES[0], kind="level")
    assert level, "the shift was not detected"
    at = (level[0].ts - from_us(t0)) // timedelta(minutes=1)
    # each point adds at most clip - delta to the statistic; a detector restarted without its state
    # would learn its scale again on the 60 points from minute 140 and find nothing before minute 200
    kind = KINDS["level"]
    least = kind.threshold / (kind.clip - kind.delta)
    assert shift_at + least - 1 <= at < min(shift_at + 2 * least, 200)
    assert level[0].statistic > level[0].threshold
    assert drift_events(tested, SERIES[0], since=level[0].ts + timedelta(minutes=1), kind="level") == []
    assert len(drift_events(tested, limit=1)) == 1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: scores(c, "not a series"), "series_id"),
        (lambda c: scores(c, "a/b/c", step=0), "step"),
        (lambda c: scores(c, "a/b/c", limit=10**9), "limit"),
        (lambda c: scores(c, "a/b/c", since=from_us(2), until=from_us(1)), "since"),
        (lambda c: summary(c, "a/b/c", step=-1), "step"),
        (lambda c: live_mae(c, "a/b/c", "ses", last=0), "limit"),
        (lambda c: drift_events(c, "a/b"), "series_id"),
        (lambda c: drift_events(c, kind="mood"), "kind"),
        (lambda c: drift_events(c, limit=0), "limit"),
    ],
)
def test_reads_name_the_bad_argument(tmp_path, call, field):
    with Catalog(f"sqlite:///{tmp_path}/c.db") as catalog, pytest.raises(InputError) as caught:
        call(catalog)
    assert caught.value.field == field
