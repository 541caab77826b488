"""Codecs: Arrow IPC messages, splitting by partition, publishing, JSON and Kafka Connect records."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.errors import CodecError
from sparkhu.series import POINT_SCHEMA, QUARANTINE_SCHEMA, points
from sparkhu.stream import partition_for
from sparkhu.stream.codecs import (
    ARROW_HEADERS,
    JsonDecoder,
    decode_arrow,
    decode_points,
    encode_arrow,
    encode_connect,
    encode_json,
    is_arrow,
    publish_points,
    split_by_series_partition,
)
from sparkhu.stream.sqlite import SqliteBus

T0 = 1_609_426_800_000_000  # 2020-12-31T15:00:00Z in µs


def many_series(n_series: int = 12, per_series: int = 100) -> pa.Table:
    """Points of ``n_series`` series, interleaved in time order, in two chunks with different dictionaries."""
    ids = [f"ampds2/electricity/M{i:02d}.P" for i in range(n_series)] * per_series
    ts = np.repeat(np.arange(per_series) * 60_000_000 + T0, n_series)
    table = points(ids, ts, np.arange(len(ids), dtype="float64"))
    half = table.num_rows // 2
    return pa.concat_tables([points(ids[:half], ts[:half], np.arange(half)), table.slice(half)])


def sort_points(table: pa.Table) -> list[tuple[str, object, float]]:
    return sorted(zip(*(table.column(n).to_pylist() for n in POINT_SCHEMA.names), strict=True))


@pytest.mark.parametrize("compression", ["zstd", "lz4", None])
def test_arrow_round_trip(compression: str | None) -> None:
    table = many_series()
    data = encode_arrow(table, compression=compression)
    assert is_arrow(data) and not is_arrow(b'{"a": 1}')
    assert decode_arrow(data).equals(table)
    assert decode_points(data).schema.equals(POINT_SCHEMA)
    assert sort_points(decode_points(data)) == sort_points(table)


def test_undecodable_arrow_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match=r"not an Arrow IPC stream \(8 bytes\)"):
        decode_arrow(b"\xff\xff\xff\xffjunk")
    other = encode_arrow(pa.table({"a": [1, 2]}))
    with pytest.raises(CodecError, match="not a points table"):
        decode_points(other)
    with pytest.raises(CodecError, match="cannot encode"):
        encode_arrow(pa.table({"a": [1]}), compression="snappy-ish")


def test_split_groups_series_by_partition_and_keeps_their_order() -> None:
    table = many_series()
    parts = split_by_series_partition(table, 4)
    assert len({partition_for(key, 4) for key, _ in parts}) == len(parts)
    assert sum(part.num_rows for _, part in parts) == table.num_rows
    assert sort_points(pa.concat_tables([part for _, part in parts])) == sort_points(table)
    for key, part in parts:
        names = part.column("series_id").to_pylist()
        assert {partition_for(name.encode(), 4) for name in names} == {partition_for(key, 4)}
        assert key.decode() == names[0]
        dictionary = part.column("series_id").chunk(0).dictionary.to_pylist()
        assert sorted(dictionary) == sorted(set(names))  # compacted: only its own series
        for name in set(names):
            ts = [t for n, t in zip(names, part.column("ts").to_pylist(), strict=True) if n == name]
            assert ts == sorted(ts) and len(ts) == 100
    assert split_by_series_partition(points("a/b/c", [], []), 4) == []
    [(key, whole)] = split_by_series_partition(table, 1)
    assert whole.num_rows == table.num_rows


def test_split_rejects_bad_input() -> None:
    with pytest.raises(CodecError, match="partitions must be an integer >= 1"):
        split_by_series_partition(many_series(), 0)
    with pytest.raises(CodecError, match="missing column"):
        split_by_series_partition(pa.table({"series_id": ["a/b/c"]}), 2)
    nulls = pa.table({"series_id": ["a/b/c", None], "ts": [1, 2], "value": [1.0, 2.0]})
    with pytest.raises(CodecError, match="null series_id or ts"):
        split_by_series_partition(
            nulls.cast(
                pa.schema([("series_id", pa.string()), ("ts", pa.timestamp("us")), ("value", pa.float64())])
            ),
            2,
        )


def test_publish_points_creates_the_topic_and_splits_large_tables(tmp_path) -> None:
    table = many_series(n_series=6, per_series=250)
    with SqliteBus(f"sqlite:///{tmp_path / 'bus.db'}", default_partitions=3) as bus:
        sent = publish_points(bus, "raw.meters", table, max_rows=200)
        assert bus.partitions("raw.meters") == 3
        with bus.consumer("g", ["raw.meters"]) as consumer:
            messages = consumer.poll(max_messages=1000, timeout=1)
    assert len(messages) == sent >= table.num_rows // 200
    assert all(m.headers == ARROW_HEADERS for m in messages)
    decoded = [decode_points(m.value) for m in messages]
    assert max(t.num_rows for t in decoded) <= 200
    assert sort_points(pa.concat_tables(decoded)) == sort_points(table)
    for message, part in zip(messages, decoded, strict=True):
        assert {partition_for(s.encode(), 3) for s in part.column("series_id").to_pylist()} == {
            message.partition
        }
    with pytest.raises(CodecError, match="max_rows must be an integer >= 1"):
        publish_points(bus, "raw.meters", table, max_rows=0)


# What the InfluxDB source connector put on AMPds2_tests_electricity (JsonConverter, schemas on).
INFLUX_SCHEMA = {
    "type": "struct",
    "name": "electricity",
    "optional": False,
    "fields": [
        {"field": "measurement", "type": "string", "optional": False},
        {"field": "tags", "type": "map", "optional": False,
         "keys": {"type": "string", "optional": False}, "values": {"type": "string", "optional": True}},
        {"field": "time", "type": "string", "optional": True},
        {"field": "V", "type": "double", "optional": True},
        {"field": "I", "type": "double", "optional": True},
        {"field": "P", "type": "double", "optional": True},
    ],
}  # fmt: skip


def envelope(payload: dict) -> bytes:
    return json.dumps({"schema": INFLUX_SCHEMA, "payload": payload}).encode()


def test_kafka_connect_records_become_points_and_a_bad_one_is_quarantined() -> None:
    values = [
        envelope(
            {
                "measurement": "electricity",
                "tags": {"zone": "FGE"},
                "time": "2020-12-31T15:00:00Z",
                "V": 120.1,
                "I": 0.3,
                "P": 33.0,
            }
        ),
        envelope(
            {
                "measurement": "electricity",
                "tags": {"zone": "FGE"},
                "time": "2020-12-31T15:01:00Z",
                "V": 120.4,
                "I": None,
                "P": 34,
            }
        ),
        b'{"time": 1609426800000, "measurement": "electricity", "zone": "WHE", "V": 119.9, "P": 1250.0}',
        envelope({"measurement": "electricity", "tags": {"zone": "FGE"}, "time": "yesterday", "V": 1.0}),
        b'{"schema": {"type": "struct"}, "payload": {"measurement": "electricity", "zone": "FGE"',
        envelope({"measurement": "electricity", "tags": {}, "time": "2020-12-31T15:02:00Z", "V": 1.0}),
        envelope({"measurement": "electricity", "tags": {"zone": "F G"}, "time": 1609426800000, "V": 1.0}),
        envelope({"measurement": "electricity", "tags": {"zone": "FGE"}, "time": 1609426800000, "note": "x"}),
    ]
    sources = [f"AMPds2_tests_electricity/0/{i}" for i in range(len(values))]
    good, bad = JsonDecoder(source="ampds2", tag="zone").decode(values, sources)
    assert good.schema.equals(POINT_SCHEMA) and bad.schema.equals(QUARANTINE_SCHEMA)
    t0 = datetime(2020, 12, 31, 15, tzinfo=UTC)
    t1 = datetime(2020, 12, 31, 15, 1, tzinfo=UTC)
    assert sort_points(good) == [
        ("ampds2/electricity/FGE.I", t0, 0.3),
        ("ampds2/electricity/FGE.P", t0, 33.0),
        ("ampds2/electricity/FGE.P", t1, 34.0),
        ("ampds2/electricity/FGE.V", t0, 120.1),
        ("ampds2/electricity/FGE.V", t1, 120.4),
        ("ampds2/electricity/WHE.P", t0, 1250.0),
        ("ampds2/electricity/WHE.V", t0, 119.9),
    ]
    rows = bad.to_pylist()
    assert [r["source"] for r in rows] == sources[3:]
    assert [r["field"] for r in rows] == ["time", None, "zone", "zone", None]
    reasons = [r["reason"] for r in rows]
    assert "'yesterday' is neither epoch ms nor ISO-8601" in reasons[0]
    assert reasons[1].startswith("not JSON")
    assert reasons[2] == "missing"
    assert "'F G' cannot be part of a series id" in reasons[3]
    assert "no numeric field" in reasons[4]
    assert rows[1]["raw"] == values[4].decode() and all(r["quarantined_at"] for r in rows)


def test_measurement_mapping_is_configurable() -> None:
    record = b'{"ts": "2021-01-01T09:00:00+09:00", "zone": "FGE", "V": 1.5, "P": 2.5, "S": 3.5}'
    decoder = JsonDecoder(source="site", measurement="power", tag="zone", fields=["P", "S"], time_field="ts")
    good, bad = decoder.decode([record], ["x/0/0"])
    assert bad.num_rows == 0
    assert good.column("series_id").to_pylist() == ["site/power/FGE.P", "site/power/FGE.S"]
    assert good.column("ts").to_pylist()[0] == datetime(2021, 1, 1, tzinfo=UTC)
    good, _ = JsonDecoder(source="site", time_field="ts", ts_unit="s").decode(
        [b'{"ts": 1609459200, "measurement": "m", "V": 1}'], ["x/0/1"]
    )
    assert good.column("series_id").to_pylist() == ["site/m/V"]
    assert good.column("ts").to_pylist() == [datetime(2021, 1, 1, tzinfo=UTC)]


def test_plain_json_points_in_every_time_form() -> None:
    values = [
        b'{"series_id": "a/b/c", "ts": 1609459200000, "value": 1}',
        b'[{"series_id": "a/b/c", "ts": "2021-01-01T00:01:00", "value": 2.5},'
        b' {"series_id": "a/b/d", "ts": "1609459320000", "value": null}]',
        b'{"series_id": "not-an-id", "ts": 1, "value": 1}',
        b'{"series_id": "a/b/c", "ts": 1, "value": "high"}',
        b'{"series_id": "a/b/c", "ts": 1e300, "value": 1}',
        b'"just a string"',
        b'{"ts": 1, "value": 2}',
    ]
    good, bad = JsonDecoder().decode(values, [f"t/0/{i}" for i in range(len(values))])
    # a null value is a missing one: no point, and nothing to quarantine (as an empty CSV cell)
    assert good.column("series_id").to_pylist() == ["a/b/c", "a/b/c"]
    assert [t.isoformat() for t in good.column("ts").to_pylist()] == [
        "2021-01-01T00:00:00+00:00",
        "2021-01-01T00:01:00+00:00",
    ]
    assert good.column("value").to_pylist() == [1.0, 2.5]
    assert [(r["source"], r["field"]) for r in bad.to_pylist()] == [
        ("t/0/2", "series_id"),
        ("t/0/3", "value"),
        ("t/0/4", "ts"),
        ("t/0/5", None),
        ("t/0/6", None),
    ]
    assert "pass source=" in bad.column("reason")[4].as_py()
    good, _ = JsonDecoder(ts_unit="us").decode(
        [b'{"series_id": "a/b/c", "ts": 1609459200000001, "value": 0}'], ["t"]
    )
    assert good.column("ts").cast(pa.int64()).to_pylist() == [1_609_459_200_000_001]


def test_json_and_connect_encoders_round_trip() -> None:
    table = points(["a/b/c", "a/b/c", "x/y/z"], [T0, T0 + 60_000_000, T0], [1.5, float("nan"), -2.0])
    envelopes = encode_connect(table)
    first = json.loads(envelopes[0])
    assert first["payload"] == {"series_id": "a/b/c", "ts": T0 // 1000, "value": 1.5}
    ts_field = first["schema"]["fields"][1]
    assert ts_field["name"] == "org.apache.kafka.connect.data.Timestamp" and ts_field["type"] == "int64"
    good, bad = JsonDecoder().decode(envelopes, ["t/0/0", "t/0/1", "t/0/2"])
    assert bad.num_rows == 0
    present = table.filter(pa.array([True, False, True]))  # NaN travels as null: a missing value, no point
    assert sort_points(good) == sort_points(present)
    good, _ = JsonDecoder(ts_unit="us").decode(encode_json(table, ts_unit="us"), ["t"] * 3)
    assert good.column("ts").equals(present.column("ts"))
    with pytest.raises(CodecError, match="ts_unit 'ns' is not one of"):
        encode_json(table, ts_unit="ns")


def test_strict_decoding_raises_on_the_first_bad_record() -> None:
    decoder = JsonDecoder(source="ampds2", tag="zone", strict=True)
    with pytest.raises(CodecError, match="topic/0/7: zone: missing"):
        decoder.decode([b'{"time": 1, "measurement": "m", "V": 1}'], ["topic/0/7"])
    with pytest.raises(CodecError, match="topic/0/8: not JSON"):
        decoder.decode([b"{"], ["topic/0/8"])
    with pytest.raises(CodecError, match="topic/0/9 item 1: expected a JSON object, got int"):
        decoder.decode([b'[{"series_id": "a/b/c", "ts": 1, "value": 1}, 5]'], ["topic/0/9"])


def test_decoder_configuration_is_checked() -> None:
    with pytest.raises(CodecError, match="ts_unit 'minutes' is not one of"):
        JsonDecoder(ts_unit="minutes")
    with pytest.raises(CodecError, match="source 'my source' cannot be part of a series id"):
        JsonDecoder(source="my source")
    with pytest.raises(CodecError, match="2 values but 1 sources"):
        JsonDecoder().decode([b"{}", b"{}"], ["t/0/0"])


def test_plain_json_batch_fast_path_matches_the_careful_path():
    import json as _json

    from sparkhu.stream.codecs import JsonDecoder

    records = [
        _json.dumps(
            {"series_id": f"a/b/m{i % 3}", "ts": 1_700_000_000_000 + i * 60_000, "value": i * 1.5}
        ).encode()
        for i in range(50)
    ]
    sources = [f"t/0/{i}" for i in range(50)]
    fast, fast_bad = JsonDecoder().decode(records, sources)
    # One malformed record sends the batch down the per-record path: it alone is quarantined.
    careful, careful_bad = JsonDecoder().decode(
        [*records, b'{"series_id": "a/b/m0", "ts": "x", "value": 1}'], [*sources, "t/0/50"]
    )
    assert fast_bad.num_rows == 0 and careful_bad.num_rows == 1
    assert careful_bad.column("source").to_pylist() == ["t/0/50"]
    assert fast.num_rows == careful.num_rows == 50
    assert fast.column("ts").to_pylist() == careful.column("ts").to_pylist()
    assert fast.column("value").to_pylist() == careful.column("value").to_pylist()
    assert fast.column("series_id").to_pylist() == careful.column("series_id").to_pylist()


def test_plain_json_fast_path_rejects_out_of_range_times_without_overflow():
    from sparkhu.stream.codecs import JsonDecoder

    points, bad = JsonDecoder(ts_unit="s").decode(
        [b'{"series_id": "a/b/c", "ts": 99999999999999999, "value": 1}'], ["t/0/0"]
    )
    assert points.num_rows == 0 and bad.num_rows == 1 and "out of range" in bad.column("reason")[0].as_py()


def test_the_stream_layer_does_not_import_the_lake():
    code = (
        "import sys, sparkhu.stream, sparkhu.stream.codecs, sparkhu.stream.sqlite; "
        "print(sorted(m for m in sys.modules if m.startswith('sparkhu.storage')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_iso_times_in_json_points_are_utc_and_bad_ones_are_quarantined():
    records = [
        b'{"series_id": "a/b/c", "ts": " 2021-01-01T09:00:00+09:00", "value": 1}',
        b'{"series_id": "a/b/c", "ts": "2021-02-30", "value": 2}',
    ]
    good, bad = JsonDecoder().decode(records, ["t/0/0", "t/0/1"])
    assert good.column("ts").cast(pa.int64()).to_pylist() == [1_609_459_200_000_000]
    assert bad.column("reason").to_pylist() == ["'2021-02-30' is neither epoch ms nor ISO-8601"]
    assert bad.schema.equals(QUARANTINE_SCHEMA)


# ---- poison inputs (issue 10, items 2 and 3): every bad record quarantined, nothing raised


def point_json(ts: str, value: str) -> bytes:
    return f'{{"series_id": "a/b/c", "ts": {ts}, "value": {value}}}'.encode()


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        (point_json("1", "9" * 400), "value", "not a finite number"),  # beyond float64
        (point_json("1", "1e400"), "value", "not a finite number"),
        (point_json("1", "Infinity"), "value", "not a finite number"),
        (point_json("1", "-Infinity"), "value", "not a finite number"),
        (point_json('"\u00b2"', "1"), "ts", "neither epoch ms nor ISO-8601"),  # "²".isdigit() is True
        (point_json("9" * 400, "1"), "ts", "years 1 to 9998"),
        (point_json("253370764800000", "1"), "ts", "years 1 to 9998"),  # 9999-01-01 in ms
        (point_json('"9999-06-01T00:00:00Z"', "1"), "ts", "years 1 to 9998"),
        (point_json('"0001-01-01T00:00:00+01:00"', "1"), "ts", "neither epoch ms nor ISO-8601"),
    ],
)
def test_json_poison_records_are_quarantined_beside_good_ones(record: bytes, field: str, reason: str) -> None:
    good = point_json("1609459200000", "2.5")
    for batch in ([record, good], [good, record]):  # the fast path for a batch and the careful one
        points_read, bad = JsonDecoder().decode(batch, ["t/0/0", "t/0/1"])
        assert points_read.column("value").to_pylist() == [2.5]
        assert bad.num_rows == 1 and bad.column("field")[0].as_py() == field
        assert reason in bad.column("reason")[0].as_py()


def test_json_nan_is_a_missing_value_and_measurement_fields_are_judged_one_by_one() -> None:
    points_read, bad = JsonDecoder().decode(
        [point_json("1", "NaN"), point_json("1", "null")], ["t/0/0", "t/0/1"]
    )
    assert points_read.num_rows == 0 and bad.num_rows == 0  # as an empty CSV cell: no point, nothing wrong
    record = b'{"time": 1609459200000, "measurement": "m", "V": 1e400, "P": 2.0, "Q": NaN}'
    points_read, bad = JsonDecoder(source="s").decode([record], ["t/0/2"])
    assert points_read.column("series_id").to_pylist() == ["s/m/P"]
    assert [(r["field"], r["reason"]) for r in bad.to_pylist()] == [("V", "not a finite number")]


def test_arrow_bytes_that_make_pyarrow_raise_oserror_are_a_codec_error() -> None:
    with pytest.raises(CodecError, match="not an Arrow IPC stream"):
        decode_arrow(bytes.fromhex("ffffffff00000080"))
