"""The prediction store on SQLite and PostgreSQL: raw rows, SES blending, queries, retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.errors import InputError
from sparkhu.storage.predictions import BLENDED_SCHEMA, FORECAST_SCHEMA, PredictionStore

US = 1_000_000
MIN = 60 * US
SID = "ampds2/electricity/WHE.P"


def ts(us: int) -> datetime:
    return datetime.fromtimestamp(us / US, tz=UTC)


def forecasts(rows: list[tuple], *, bounds: bool = False) -> pa.Table:
    """Rows of (series_id, origin_us, target_us, value[, lower, upper][, model])."""
    columns: dict[str, list] = {k: [] for k in FORECAST_SCHEMA.names}
    for row in rows:
        sid, origin, target, value, *rest = row
        lower, upper = (rest[0], rest[1]) if bounds else (None, None)
        model = rest[2] if bounds and len(rest) > 2 else (rest[0] if not bounds and rest else "ses")
        columns["series_id"].append(sid)
        columns["origin_ts"].append(origin)
        columns["target_ts"].append(target)
        columns["step"].append(max(1, (target - origin) // MIN))
        columns["value"].append(value)
        columns["lower"].append(lower)
        columns["upper"].append(upper)
        columns["model"].append(model)
    arrays = [
        pa.array(columns[f.name], pa.int64()).cast(f.type)
        if pa.types.is_timestamp(f.type)
        else pa.array(columns[f.name], f.type)
        for f in FORECAST_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=FORECAST_SCHEMA)


def blended_values(store: PredictionStore, sid: str = SID) -> list[tuple]:
    table = store.blended(sid)
    return list(
        zip(
            (t.timestamp() * US for t in table["target_ts"].to_pylist()),
            table["value"].to_pylist(),
            table["updates"].to_pylist(),
            strict=True,
        )
    )


def test_blending_matches_the_hand_computation(store):
    target = 100 * MIN
    assert store.write(forecasts([(SID, 1 * MIN, target, 10.0)])) == 1
    assert store.blended(SID)["value"].to_pylist() == [10.0]
    assert store.write(forecasts([(SID, 2 * MIN, target, 20.0)])) == 1
    assert store.blended(SID)["value"].to_pylist() == [pytest.approx(16.0)]  # 0.6*20 + 0.4*10
    assert store.write(forecasts([(SID, 3 * MIN, target, 30.0)])) == 1
    got = store.blended(SID)
    assert got["value"].to_pylist() == [pytest.approx(24.4)]  # 0.6*30 + 0.4*16
    assert got["updates"].to_pylist() == [3]


def test_forecasts_for_one_target_in_one_batch_are_applied_in_origin_order(store):
    target = 100 * MIN
    batch = forecasts(
        [(SID, 3 * MIN, target, 30.0), (SID, 1 * MIN, target, 10.0), (SID, 2 * MIN, target, 20.0)]
    )
    assert store.write(batch) == 3
    assert blended_values(store) == [(target, pytest.approx(24.4), 3)]


def test_rewriting_stored_forecasts_does_not_blend_again(store):
    first = forecasts([(SID, MIN, MIN * k, 10.0 * k) for k in range(2, 6)])
    assert store.write(first) == 4
    before = store.blended(SID)
    assert store.write(first) == 0
    assert store.blended(SID).equals(before)
    # a batch overlapping the stored one blends only its new rows
    mixed = forecasts([(SID, MIN, 2 * MIN, 999.0), (SID, 2 * MIN, 3 * MIN, 60.0)])
    assert store.write(mixed) == 1
    assert blended_values(store)[:2] == [(2 * MIN, 20.0, 1), (3 * MIN, pytest.approx(0.6 * 60 + 0.4 * 30), 2)]
    assert store.raw(SID).num_rows == 5


def test_duplicates_inside_one_batch_count_once(store):
    batch = forecasts([(SID, MIN, 5 * MIN, 10.0), (SID, MIN, 5 * MIN, 50.0), (SID, 2 * MIN, 5 * MIN, 20.0)])
    assert store.write(batch) == 2
    assert blended_values(store) == [(5 * MIN, pytest.approx(16.0), 2)]


def test_bounds_are_blended_when_present(store):
    target = 50 * MIN
    store.write(forecasts([(SID, MIN, target, 10.0, 8.0, 12.0)], bounds=True))
    store.write(forecasts([(SID, 2 * MIN, target, 20.0, None, 30.0)], bounds=True))
    got = store.blended(SID).to_pylist()[0]
    assert got["value"] == pytest.approx(16.0)
    assert got["lower"] == 8.0  # no new lower: the blended one stays
    assert got["upper"] == pytest.approx(0.6 * 30 + 0.4 * 12)
    store.write(forecasts([(SID, 3 * MIN, 51 * MIN, 5.0)]))
    assert store.blended(SID).to_pylist()[1]["lower"] is None


def test_alpha_per_series_per_call_and_per_store(catalog, store):
    other = "a/b/c"
    store.set_alpha(other, 0.5)
    assert store.alphas() == {other: 0.5}
    store.write(forecasts([(SID, MIN, 9 * MIN, 10.0), (other, MIN, 9 * MIN, 10.0)]))
    store.write(forecasts([(SID, 2 * MIN, 9 * MIN, 20.0), (other, 2 * MIN, 9 * MIN, 20.0)]))
    assert store.blended(SID)["value"].to_pylist() == [pytest.approx(16.0)]
    assert store.blended(other)["value"].to_pylist() == [pytest.approx(15.0)]
    store.write(forecasts([(other, 3 * MIN, 9 * MIN, 25.0)]), alpha=1.0)
    assert store.blended(other)["value"].to_pylist() == [25.0]
    slow = PredictionStore(catalog, alpha=0.1)
    slow.write(forecasts([(SID, 3 * MIN, 9 * MIN, 26.0)]))
    assert store.blended(SID)["value"].to_pylist() == [pytest.approx(0.1 * 26 + 0.9 * 16)]
    for bad in (0.0, 1.5, -1, "0.5"):
        with pytest.raises(InputError, match="must be in"):
            store.set_alpha(SID, bad)
    with pytest.raises(InputError, match=r"alpha: must be in \(0, 1\], got 2\.0"):
        PredictionStore(catalog.engine, alpha=2.0)
    with pytest.raises(InputError, match="not source/measurement/field"):
        store.set_alpha("nope", 0.5)


def test_vectorised_blending_equals_a_plain_fold(store):
    rng = np.random.default_rng(3)
    series = [f"s/m/f{i}" for i in range(7)]
    store.set_alpha("s/m/f3", 0.25)
    expected: dict[tuple[str, int], tuple[float, int]] = {}
    seen: set[tuple] = set()
    for batch_no in range(6):
        rows = []
        for _ in range(120):
            sid = series[rng.integers(len(series))]
            origin = int(rng.integers(0, 30)) * MIN
            target = origin + int(rng.integers(1, 6)) * MIN
            model = ["ses", "naive"][rng.integers(2)]
            rows.append((sid, origin, target, float(rng.normal(100, 10)), model))
        written = store.write(forecasts(rows))
        fresh = []
        for sid, origin, target, value, model in rows:
            if (sid, origin, target, model) not in seen:
                seen.add((sid, origin, target, model))
                fresh.append((sid, target, origin, model, value))
        assert written == len(fresh), batch_no
        for sid, target, _origin, _model, value in sorted(fresh):
            alpha = 0.25 if sid == "s/m/f3" else 0.6
            prev = expected.get((sid, target))
            expected[(sid, target)] = (
                (value, 1) if prev is None else (alpha * value + (1 - alpha) * prev[0], prev[1] + 1)
            )
    got = {}
    for sid in store.series():
        table = store.blended(sid)
        for t, v, n in zip(
            table["target_ts"].to_pylist(),
            table["value"].to_pylist(),
            table["updates"].to_pylist(),
            strict=True,
        ):
            got[(sid, int(t.timestamp()) * US)] = (pytest.approx(v), n)
    assert got == {k: (v, n) for k, (v, n) in expected.items()}


def test_a_batch_of_many_series_is_blended_in_chunks(store):
    series = [f"many/m/f{i}" for i in range(700)]
    first = forecasts([(sid, 0, k * MIN, 10.0) for sid in series for k in (1, 2)])
    second = forecasts([(sid, MIN, k * MIN, 20.0) for sid in series for k in (2, 3)])
    assert store.write(first) == 1400
    assert store.write(second) == 1400
    assert len(store.series()) == 700
    assert blended_values(store, "many/m/f699") == [
        (MIN, 10.0, 1),
        (2 * MIN, pytest.approx(16.0), 2),
        (3 * MIN, 20.0, 1),
    ]


def test_a_partly_stored_batch_of_many_series_blends_only_its_new_rows(store):
    series = [f"many/m/f{i}" for i in range(400)]
    first = forecasts([(sid, 0, k * MIN, 10.0) for sid in series for k in (1, 2)])
    assert store.write(first) == 800
    again = forecasts(
        [(sid, 0, 2 * MIN, 99.0) for sid in series] + [(sid, MIN, 2 * MIN, 20.0) for sid in series]
    )
    assert store.write(again) == 400  # the stored forecast of origin 0 is skipped, not blended again
    assert store.raw("many/m/f399").num_rows == 3
    assert blended_values(store, "many/m/f399") == [(MIN, 10.0, 1), (2 * MIN, pytest.approx(16.0), 2)]


def test_concurrent_writers_of_one_series_lose_no_blend(store):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                origin = (i * 4 + n) * MIN
                store.write(forecasts([(SID, origin, 100 * MIN, 1.0)]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert blended_values(store) == [(100 * MIN, 1.0, 40)]


def test_raw_and_blended_queries(store):
    rows = [(SID, o * MIN, (o + k) * MIN, float(o * 10 + k)) for o in range(3) for k in range(1, 4)]
    rows.append(("other/x/y", 0, MIN, 1.0))
    assert store.write(forecasts(rows)) == 10
    raw = store.raw(SID)
    assert raw.schema.equals(FORECAST_SCHEMA)
    keys = list(zip(raw["target_ts"].to_pylist(), raw["origin_ts"].to_pylist(), strict=True))
    assert keys == sorted(keys) and len(keys) == 9
    window = store.raw(SID, start=ts(2 * MIN), end=ts(4 * MIN))
    assert sorted({t.timestamp() * US for t in window["target_ts"].to_pylist()}) == [2 * MIN, 3 * MIN]
    assert window["step"].to_pylist() == [2, 1, 3, 2, 1]
    assert store.raw(SID, limit=2).num_rows == 2
    blended = store.blended(SID)
    assert blended.schema.equals(BLENDED_SCHEMA)
    assert [t.timestamp() * US for t in blended["target_ts"].to_pylist()] == [k * MIN for k in range(1, 6)]
    assert store.blended(SID, start=ts(2 * MIN), end=ts(3 * MIN))["updates"].to_pylist() == [2]
    assert store.blended(SID, limit=1).num_rows == 1
    assert store.raw("no/such/series").num_rows == 0
    assert store.blended("no/such/series").schema.equals(BLENDED_SCHEMA)
    with pytest.raises(InputError, match="limit: must be a positive integer"):
        store.raw(SID, limit=0)
    with pytest.raises(InputError, match="limit"):
        store.blended(SID, limit=-5)


def test_latest_origin_and_series(store):
    assert store.latest_origin(SID) is None
    assert store.series() == []
    store.write(
        forecasts([(SID, 5 * MIN, 6 * MIN, 1.0), (SID, 2 * MIN, 6 * MIN, 1.0), ("a/b/c", MIN, 2 * MIN, 1.0)])
    )
    assert store.latest_origin(SID) == ts(5 * MIN)
    assert store.series() == ["a/b/c", SID]


def test_two_models_for_one_target_blend_in_model_order(store):
    batch = forecasts([(SID, MIN, 5 * MIN, 20.0, "ses"), (SID, MIN, 5 * MIN, 10.0, "naive")])
    assert store.write(batch) == 2
    assert blended_values(store) == [(5 * MIN, pytest.approx(16.0), 2)]
    assert sorted(store.raw(SID)["model"].to_pylist()) == ["naive", "ses"]


def test_delete_before(store):
    rows = [(s, 0, k * MIN, 1.0) for s in (SID, "a/b/c") for k in range(1, 6)]
    store.write(forecasts(rows))
    assert store.delete_before(ts(3 * MIN), series=["a/b/c"]) == 4  # 2 raw + 2 blended
    assert store.raw("a/b/c").num_rows == 3 and store.raw(SID).num_rows == 5
    assert store.delete_before(ts(4 * MIN)) == 6 + 2
    assert store.blended(SID).num_rows == 2 and store.blended("a/b/c").num_rows == 2
    with pytest.raises(InputError, match="list of series ids"):
        store.delete_before(ts(0), series=SID)


def test_loose_input_types_are_accepted(store):
    table = pa.table(
        {
            "series_id": pa.array([SID, SID]).dictionary_encode(),
            "origin_ts": pa.array([0, 0], pa.timestamp("ms")),
            "target_ts": pa.array([60_000, 120_000], pa.timestamp("ms")),
            "step": pa.array([1, 2], pa.int64()),
            "value": pa.array([1, 2], pa.int64()),
            "model": ["ses", "ses"],
        }
    )
    assert store.write(table) == 2
    raw = store.raw(SID)
    assert raw["target_ts"].to_pylist() == [ts(MIN), ts(2 * MIN)]
    assert raw["lower"].null_count == 2
    assert store.write(forecasts([])) == 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop_columns(["model"]), r"forecasts: missing column\(s\) model; expected series_id"),
        (lambda t: t.set_column(4, "value", pa.array([None], pa.float64())), r"forecasts: value: has 1 null"),
        (
            lambda t: t.set_column(4, "value", pa.array([float("nan")])),
            "forecasts: value: has 1 NaN or infinite",
        ),
        (
            lambda t: t.set_column(6, "upper", pa.array([float("inf")])),
            "forecasts: upper: has 1 NaN or infinite",
        ),
        (
            lambda t: t.set_column(0, "series_id", pa.array(["bad id"])),
            "forecasts: series_id: 'bad id' is not source/measurement/field",
        ),
        (lambda t: t.set_column(4, "value", pa.array(["x"])), "forecasts: value: is string, expected double"),
        (
            lambda t: t.set_column(2, "target_ts", pa.array([0], pa.int64())),
            r"forecasts: target_ts: 1 row\(s\) before origin_ts",
        ),
        (lambda t: t.to_pandas(), "must be a pyarrow Table"),
    ],
)
def test_malformed_forecasts_are_rejected(store, change, match):
    good = forecasts([(SID, MIN, 2 * MIN, 1.0)])
    with pytest.raises(InputError, match=match):
        store.write(change(good))
    assert store.raw(SID).num_rows == 0


def test_store_needs_an_engine():
    with pytest.raises(InputError, match="needs the catalog's engine"):
        PredictionStore("sqlite:///x.db")
