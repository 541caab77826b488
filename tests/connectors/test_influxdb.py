"""The InfluxDB source and sink against a real InfluxDB 1.x server (``influxd`` started by the tests).

Timestamp-mode polling with the watermark in the catalog, series ids from db/measurement/tags/field,
chunked reads that never split a timestamp, late points within the lag re-read without duplicates, a
field whose type changed quarantined, a server that goes away named in one error; and forecasts
written back as line protocol, idempotently.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sparkhu.connectors import SINKS, SOURCES, source_settings
from sparkhu.connectors.influx_client import InfluxClient
from sparkhu.connectors.influx_server import InfluxServer
from sparkhu.connectors.influx_sink import InfluxForecastSink
from sparkhu.connectors.influxdb import InfluxSource
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.errors import ConnectorError
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import FORECAST_SCHEMA, PredictionStore

T0 = 1_609_426_800  # 2020-12-31T15:00:00Z, seconds
ZONES = ("WHE", "FGE", "B1E")


def lines(minutes: range, zones: tuple[str, ...] = ZONES, measurement: str = "electricity") -> bytes:
    return "".join(
        f"{measurement},zone={z} P={m * 10 + i}.5,Q={m}i {(T0 + 60 * m) * 10**9}\n"
        for m in minutes
        for i, z in enumerate(zones)
    ).encode()


@pytest.fixture
def parts(tmp_path: Path):
    lake = Lake(str(tmp_path / "lake"))
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    yield lake, catalog
    catalog.close()


def source(server: InfluxServer, db: str, **options) -> InfluxSource:
    return InfluxSource("amp", server.url, db, "electricity", source="AMPds2", **options)


def test_kinds_are_registered_and_validated() -> None:
    assert "influxdb" in SOURCES.keys() and "influxdb" in SINKS.keys()
    spec = source_settings(
        {
            "name": "a",
            "kind": "influxdb",
            "url": "http://h:8086",
            "source": "AMPds2",
            "measurement": "electricity",
        }
    )
    assert spec.open().db == "AMPds2"
    with pytest.raises(Exception, match=r"sources\.a\.chunk_size"):
        source_settings({**spec.model_dump(), "chunk_size": 0})


def test_polls_in_timestamp_mode_with_chunks_and_resumes(influx_server, influx_db, parts) -> None:
    client, db = influx_db
    lake, catalog = parts
    client.write(db, lines(range(10)))
    src = source(influx_server, db, chunk_size=4)  # 4 rows a chunk: timestamps of 3 zones straddle chunks
    first = ingest_to_lake(src, lake, catalog, dataset="amp")
    assert first.points == 10 * 3 * 2 and first.batches > 2
    table = lake.read("raw", "amp")
    ids = set(table.column("series_id").to_pylist())
    assert "AMPds2/electricity/WHE.P" in ids and "AMPds2/electricity/B1E.Q" in ids and len(ids) == 6
    assert table.num_rows == 60
    assert catalog.get_watermark("amp", "lake:raw/amp")["until_us"] == (T0 + 540) * 10**6
    again = ingest_to_lake(source(influx_server, db, chunk_size=4), lake, catalog, dataset="amp")
    assert again.points == 0
    client.write(db, lines(range(10, 13)))
    more = ingest_to_lake(source(influx_server, db, chunk_size=4), lake, catalog, dataset="amp")
    assert more.points == 3 * 3 * 2
    assert lake.read("raw", "amp").num_rows == 78


def test_late_points_within_the_lag_are_read_once(influx_server, influx_db, parts) -> None:
    client, db = influx_db
    lake, catalog = parts
    client.write(db, lines(range(10)))
    assert ingest_to_lake(source(influx_server, db, lag_s=300), lake, catalog, dataset="amp").points == 60
    late = f"electricity,zone=NEW P=1.0 {(T0 + 60 * 7) * 10**9}\n"  # within 5 minutes of the watermark
    too_late = f"electricity,zone=OLD P=1.0 {(T0 + 60 * 1) * 10**9}\n"  # older than the lag
    client.write(db, (late + too_late).encode() + lines(range(10, 11)))
    stats = ingest_to_lake(source(influx_server, db, lag_s=300), lake, catalog, dataset="amp")
    assert stats.points == 1 + 6  # the late point and the new minute; nothing emitted twice
    assert ingest_to_lake(source(influx_server, db, lag_s=300), lake, catalog, dataset="amp").points == 0
    ids = lake.read("raw", "amp").column("series_id").to_pylist()
    assert "AMPds2/electricity/NEW.P" in ids and "AMPds2/electricity/OLD.P" not in ids


def test_a_field_whose_type_changed_is_quarantined(influx_server, influx_db, parts) -> None:
    client, db = influx_db
    lake, catalog = parts
    client.write(db, lines(range(3)))
    later = T0 + 30 * 86_400  # another shard: InfluxDB lets the type differ there
    client.write(db, f'electricity,zone=WHE P="broken",Q=1i {later * 10**9}\n'.encode())
    stats = ingest_to_lake(source(influx_server, db), lake, catalog, dataset="amp")
    assert stats.points == 18 + 1 and stats.quarantined == 1
    bad = lake.read_quarantine("amp").to_pylist()[0]
    assert bad["source"] == "amp" and bad["field"] == "P" and "type changed" in bad["reason"]


def test_a_server_gone_mid_poll_is_one_error_naming_the_connector(tmp_path: Path, parts) -> None:
    lake, catalog = parts
    server = InfluxServer(tmp_path / "gone").start()
    try:
        client = InfluxClient(server.url, who="test")
        client.execute('CREATE DATABASE "d"')
        client.write("d", lines(range(5)))
        assert ingest_to_lake(source(server, "d"), lake, catalog, dataset="amp").points == 30
    finally:
        server.kill()
    from sparkhu.retrying import RetryPolicy

    src = source(server, "d")
    src.client.retry = RetryPolicy(retries=1, backoff_s=0.0)
    with pytest.raises(
        ConnectorError, match=r"influxdb source 'amp': .*SHOW TAG KEYS.* failed after 2 attempt"
    ):
        ingest_to_lake(src, lake, catalog, dataset="amp")
    assert catalog.get_watermark("amp", "lake:raw/amp")["until_us"] == (T0 + 240) * 10**6  # nothing lost


def test_forecasts_are_written_back_idempotently(influx_server, influx_db, tmp_path: Path) -> None:
    client, db = influx_db
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    store = PredictionStore(catalog.engine)
    origin = (T0 + 600) * 10**6
    rows = {
        "series_id": ["AMPds2/electricity/WHE.P"] * 3,
        "origin_ts": [origin] * 3,
        "target_ts": [origin + s * 60_000_000 for s in (1, 2, 3)],
        "step": [1, 2, 3],
        "value": [1.0, 2.0, 3.0],
        "lower": [0.5, 1.5, 2.5],
        "upper": [1.5, 2.5, 3.5],
        "model": ["ses"] * 3,
    }
    store.write(pa.table(rows).cast(FORECAST_SCHEMA))
    sink = InfluxForecastSink("back", store, catalog, client, db, "AMPds2_electricity")
    assert sink.write_once() == 6
    assert sink.write_once() == 0  # nothing new
    shifted = {
        **rows,
        "origin_ts": [origin + 60_000_000] * 3,
        "target_ts": [origin + s * 60_000_000 for s in (2, 3, 4)],
    }
    store.write(pa.table(shifted).cast(FORECAST_SCHEMA))
    assert sink.write_once() == 3 + 3  # the new raw forecasts, and the blended targets they touched
    catalog.set_watermark("back", sink.key, {})  # as after a crash before the watermark: written again
    sink.write_once()

    def count(measurement: str) -> int:
        result = next(client.query(f'SELECT count(value) FROM "{measurement}"', db))
        return int(result["series"][0]["values"][0][1])

    assert count("forecast_raw") == 6 and count("forecast") == 4
    blended = next(client.query('SELECT value FROM "forecast" WHERE time = 1609427400000000000 + 120s', db))
    assert blended["series"][0]["values"][0][1] == pytest.approx(0.6 * 1.0 + 0.4 * 2.0)
    catalog.close()
