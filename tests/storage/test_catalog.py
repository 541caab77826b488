"""The catalog on SQLite and PostgreSQL: every method, migrations, errors, concurrency."""

from __future__ import annotations

import multiprocessing
import runpy
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from sparkhu.errors import BackendUnavailable, CatalogError, ConfigError, InputError, NotFoundError
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, RunRecord, SeriesInfo, migrate, schema
from sparkhu.storage.predictions import PredictionStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
US = 1_000_000


def test_opening_migrates_to_head_and_again_is_a_no_op(catalog_uri):
    with Catalog(catalog_uri) as cat:
        assert migrate.current_revision(cat.engine) == migrate.head_revision() == "0006"
        cat.set_watermark("csv", "a.csv", {"line": 7})
        tables = set(sa.inspect(cat.engine).get_table_names())
        migrate.upgrade(cat.engine)
        assert set(sa.inspect(cat.engine).get_table_names()) == tables
    with Catalog(catalog_uri) as cat, Catalog(catalog_uri, migrate=False) as again:
        assert migrate.current_revision(cat.engine) == migrate.head_revision()
        assert again.get_watermark("csv", "a.csv") == {"line": 7}
    assert tables >= {"series", "runs", "forecasts_raw", "forecasts_blended", migrate.VERSION_TABLE}


def test_threads_opening_one_fresh_catalog_migrate_it_once(catalog_uri):
    errors: list[BaseException] = []

    def open_and_write(n: int) -> None:
        try:
            with Catalog(catalog_uri) as cat:
                cat.set_watermark("opener", str(n), {"n": n})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Catalog(catalog_uri, migrate=False) as cat:
        assert [cat.get_watermark("opener", str(n)) for n in range(4)] == [{"n": n} for n in range(4)]


def test_migrations_build_exactly_the_schema_module(catalog):
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE}
        )
        assert compare_metadata(context, schema.metadata) == []


def test_unmigrated_database_is_refused_without_migrate(catalog_uri):
    with pytest.raises(CatalogError, match=r"schema revision \(empty\), expected 0006.*migrate=True"):
        Catalog(catalog_uri, migrate=False)


def test_unreachable_postgres_names_the_uri_with_password_masked():
    uri = "postgresql://sparkhu:hunter2@127.0.0.1:1/catalog"
    with pytest.raises(
        BackendUnavailable, match=r"postgresql://sparkhu:\*\*\*@127\.0\.0\.1:1/catalog"
    ) as info:
        Catalog(uri)
    assert "hunter2" not in str(info.value)


def test_unopenable_sqlite_file_is_backend_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendUnavailable, match=r"file/catalog\.db"):
        Catalog(f"sqlite:///{blocker}/catalog.db")


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("mysql://root@localhost/cat", "unsupported scheme 'mysql'"),
        ("kafka://localhost:9092", "unsupported scheme 'kafka'"),
        ("not a uri", "not a database URL"),
    ],
)
def test_bad_scheme_is_a_config_error(uri, match):
    with pytest.raises(ConfigError, match=match):
        Catalog(uri)


# ---------------------------------------------------------------- sources and series


def test_sources_are_upserted(catalog):
    catalog.upsert_source("meters", "csv", {"path": "/data/a.csv"})
    catalog.upsert_source("meters", "csv", {"path": "/data/b.csv"})
    catalog.upsert_source("influx", "influxdb")
    got = catalog.sources()
    assert [(s["name"], s["kind"], s["config"]) for s in got] == [
        ("influx", "influxdb", {}),
        ("meters", "csv", {"path": "/data/b.csv"}),
    ]
    assert got[1]["updated_at"] >= got[1]["created_at"]
    with pytest.raises(InputError, match="source kind: must be a non-empty string"):
        catalog.upsert_source("x", "")
    with pytest.raises(InputError, match="config of source x: not JSON-serialisable"):
        catalog.upsert_source("x", "csv", {"when": T0})


def test_upsert_series_keeps_statistics_and_updates_descriptions(catalog):
    info = SeriesInfo.of(
        "ampds2/electricity/WHE.P", unit="W", period_s=60.0, regular=True, tags={"site": "a"}
    )
    info.first_ts, info.last_ts, info.count = T0, T0 + timedelta(hours=1), 61
    catalog.upsert_series(info)
    catalog.upsert_series(SeriesInfo.of("ampds2/electricity/WHE.P", unit="kW", value_min=0.0, value_max=9e3))
    got = catalog.series("ampds2/electricity/WHE.P")
    assert (got.source, got.measurement, got.field) == ("ampds2", "electricity", "WHE.P")
    assert (got.unit, got.period_s, got.regular, got.tags) == ("kW", None, None, {})
    assert (got.value_min, got.value_max) == (0.0, 9e3)
    assert (got.first_ts, got.last_ts, got.count) == (T0, T0 + timedelta(hours=1), 61)


def test_upsert_series_rejects_malformed_info(catalog):
    with pytest.raises(InputError, match="not source/measurement/field"):
        catalog.upsert_series(SeriesInfo("nope", "nope", "", ""))
    with pytest.raises(InputError, match="do not match the id"):
        catalog.upsert_series(SeriesInfo("a/b/c", "a", "b", "x"))
    with pytest.raises(InputError, match=r"value_min 5\.0 > value_max 1\.0"):
        catalog.upsert_series(SeriesInfo.of("a/b/c", value_min=5.0, value_max=1.0))


def test_unknown_series_is_not_found(catalog):
    with pytest.raises(NotFoundError, match="series 'no/such/series' is not in the catalog"):
        catalog.series("no/such/series")


def test_update_series_stats_widens_range_and_adds_counts(catalog):
    catalog.upsert_series(SeriesInfo.of("a/b/c", unit="W", tags={"k": "v"}))
    t0 = 1_704_067_200 * US
    catalog.update_series_stats(
        points(["a/b/c", "a/b/c", "d/e/f"], [t0 + 60 * US, t0 + 120 * US, t0], [1, 2, 3])
    )
    catalog.update_series_stats(points("a/b/c", [t0, t0 + 90 * US], [0.0, 0.5]))
    abc, deff = catalog.series("a/b/c"), catalog.series("d/e/f")
    assert (abc.first_ts, abc.last_ts, abc.count) == (T0, T0 + timedelta(seconds=120), 4)
    assert (abc.unit, abc.tags) == ("W", {"k": "v"})
    assert (deff.first_ts, deff.last_ts, deff.count, deff.source) == (T0, T0, 1, "d")
    catalog.update_series_stats(points("a/b/c", [], []))
    assert catalog.series("a/b/c").count == 4


def test_update_series_stats_accepts_plain_strings_and_many_series(catalog):
    ids = [f"s/m/f{i}" for i in range(50)]
    table = pa.table(
        {
            "series_id": np.repeat(ids, 3),
            "ts": pa.array(np.tile([3, 1, 2], 50) * US).cast(pa.timestamp("us", tz="UTC")),
            "value": np.zeros(150),
        }
    )
    catalog.update_series_stats(table)
    assert [s.count for s in catalog.list_series(prefix="s/m/")] == [3] * 50
    assert catalog.series("s/m/f7").first_ts == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_update_series_stats_rejects_malformed_points(catalog):
    with pytest.raises(InputError, match=r"points: missing column\(s\) ts"):
        catalog.update_series_stats(pa.table({"series_id": ["a/b/c"]}))
    with pytest.raises(InputError, match="not source/measurement/field"):
        catalog.update_series_stats(points("bad-id", [1], [1.0]))
    with pytest.raises(InputError, match="points: ts: is int64, expected timestamp"):
        catalog.update_series_stats(pa.table({"series_id": ["a/b/c"], "ts": [1]}))


def test_list_series_by_prefix_and_limit(catalog):
    for sid in ("x_y/m/a", "xay/m/b", "x_y/m/c", "z/m/d"):
        catalog.upsert_series(SeriesInfo.of(sid))
    assert [s.series_id for s in catalog.list_series()] == ["x_y/m/a", "x_y/m/c", "xay/m/b", "z/m/d"]
    assert [s.series_id for s in catalog.list_series(prefix="x_y/")] == ["x_y/m/a", "x_y/m/c"]
    assert [s.series_id for s in catalog.list_series(prefix="X")] == []
    assert len(catalog.list_series(limit=3)) == 3
    with pytest.raises(InputError, match="limit: must be a positive integer, got 0"):
        catalog.list_series(limit=0)


# ---------------------------------------------------------------- datasets and partitions


@dataclass
class Part:
    zone: str
    dataset: str
    key: str
    files: int
    rows: int
    bytes: int


def test_partitions_are_upserted_and_forgotten(catalog):
    catalog.register_partitions(
        "raw",
        "meters",
        [
            Part("raw", "meters", "date=2024-01-02", 1, 10, 100),
            Part("raw", "meters", "date=2024-01-01", 2, 20, 200),
        ],
    )
    catalog.register_partitions(
        "raw", "meters", [{"key": "date=2024-01-02", "files": 3, "rows": 30, "bytes": 300}]
    )
    catalog.register_partitions("clean", "meters", [])
    got = catalog.list_partitions("raw", "meters")
    assert [(p["key"], p["files"], p["rows"], p["bytes"]) for p in got] == [
        ("date=2024-01-01", 2, 20, 200),
        ("date=2024-01-02", 3, 30, 300),
    ]
    assert got[0]["zone"] == "raw" and got[0]["updated_at"].tzinfo is UTC
    assert catalog.list_partitions("clean", "meters") == []
    assert catalog.forget_partitions("raw", "meters", ["date=2024-01-01", "date=1999-01-01"]) == 1
    assert [p["key"] for p in catalog.list_partitions("raw", "meters")] == ["date=2024-01-02"]


def test_register_partitions_rejects_malformed_partitions(catalog):
    with pytest.raises(InputError, match="belongs to zone 'clean', not 'raw'"):
        catalog.register_partitions("raw", "m", [Part("clean", "m", "k", 1, 1, 1)])
    with pytest.raises(InputError, match="needs integer files, rows and bytes"):
        catalog.register_partitions("raw", "m", [{"key": "k", "files": "many", "rows": 1, "bytes": 1}])
    with pytest.raises(InputError, match="partition key: must be a non-empty string"):
        catalog.register_partitions("raw", "m", [{"files": 1, "rows": 1, "bytes": 1}])
    assert catalog.list_partitions("raw", "m") == []


# ---------------------------------------------------------------- watermarks


def test_watermarks_round_trip(catalog):
    assert catalog.get_watermark("csv", "a.csv") is None
    catalog.set_watermark("csv", "a.csv", {"line": 10, "file": {"size": 5}})
    catalog.set_watermark("csv", "a.csv", {"line": 20})
    catalog.set_watermark("kafka", "", {"offsets": [1, 2, 3]})
    assert catalog.get_watermark("csv", "a.csv") == {"line": 20}
    assert catalog.get_watermark("kafka") == {"offsets": [1, 2, 3]}
    with pytest.raises(InputError, match="watermark csv/b: not JSON-serialisable"):
        catalog.set_watermark("csv", "b", {"at": object()})
    with pytest.raises(InputError, match="must be a mapping"):
        catalog.set_watermark("csv", "b", [1, 2])  # type: ignore[arg-type]


def test_watermarks_from_many_threads(catalog):
    def work(n):
        for i in range(20):
            catalog.set_watermark(f"t{n}", "k", {"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [catalog.get_watermark(f"t{n}", "k") for n in range(4)] == [{"i": 19}] * 4


# ---------------------------------------------------------------- runs


def test_runs_start_finish_and_list_newest_first(catalog):
    catalog.start_run(
        RunRecord(
            "r1",
            "pipeline",
            "clean",
            "running",
            T0,
            series_id="a/b/c",
            interval_start=T0,
            interval_end=T0 + timedelta(days=1),
            params={"window": 60},
        )
    )
    catalog.start_run(RunRecord("r2", "connector", "csv", "running", T0 + timedelta(minutes=1)))
    catalog.start_run(RunRecord("r3", "pipeline", "resample", "skipped", T0 + timedelta(minutes=2)))
    catalog.finish_run("r1", "success", rows_in=100, rows_out=90)
    catalog.finish_run("r2", "failed", error="meters.csv:3: WHE: bad number")
    assert [r.run_id for r in catalog.runs()] == ["r3", "r2", "r1"]
    assert [r.run_id for r in catalog.runs(kind="pipeline")] == ["r3", "r1"]
    assert [r.run_id for r in catalog.runs(kind="pipeline", name="clean")] == ["r1"]
    assert [r.run_id for r in catalog.runs(limit=1)] == ["r3"]
    r1 = catalog.runs(name="clean")[0]
    assert (r1.status, r1.rows_in, r1.rows_out, r1.params, r1.series_id) == (
        "success",
        100,
        90,
        {"window": 60},
        "a/b/c",
    )
    assert (r1.started_at, r1.interval_end) == (T0, T0 + timedelta(days=1))
    assert r1.finished_at is not None and r1.finished_at > T0
    r2 = catalog.runs(kind="connector")[0]
    assert (r2.status, r2.error, r2.rows_in) == ("failed", "meters.csv:3: WHE: bad number", None)


def test_run_errors(catalog):
    catalog.start_run(RunRecord("r1", "pipeline", "clean", "running", T0))
    with pytest.raises(CatalogError, match=r"starting run 'r1'.*conflicts with stored data"):
        catalog.start_run(RunRecord("r1", "pipeline", "clean", "running", T0))
    with pytest.raises(NotFoundError, match="run 'nope' was never started"):
        catalog.finish_run("nope", "success")
    with pytest.raises(InputError, match="run status 'done' is not one of running, success, failed, skipped"):
        catalog.finish_run("r1", "done")
    with pytest.raises(InputError, match="run status"):
        catalog.start_run(RunRecord("r2", "pipeline", "clean", "ok", T0))
    with pytest.raises(InputError, match="limit"):
        catalog.runs(limit=-1)


# ---------------------------------------------------------------- models, policies, audit


def test_models_are_registered_and_filtered(catalog):
    catalog.register_model("ses", "1", "a/b/c", "file:///m/ses/1", {"mae": 2.0})
    catalog.register_model("ses", "1", "a/b/c", "file:///m/ses/1b", {"mae": 1.5})
    catalog.register_model("naive", "3", "d/e/f", "file:///m/naive/3", {"mae": 4.0})
    catalog.register_model("global", "1", None, "file:///m/global/1", {})
    models = catalog.models()
    assert sorted((m["name"], m["version"]) for m in models) == [
        ("global", "1"),
        ("naive", "3"),
        ("ses", "1"),
    ]
    (ses,) = catalog.models(series_id="a/b/c")
    assert (ses["uri"], ses["metrics"], ses["aliases"]) == ("file:///m/ses/1b", {"mae": 1.5}, [])
    assert catalog.models(series_id="x/y/z") == []
    with pytest.raises(InputError, match="model uri: must be a non-empty string"):
        catalog.register_model("ses", "2", None, "", {})


def test_policies_are_saved_replaced_listed_and_deleted(catalog):
    catalog.set_policy("retention", "raw", {"keep_days": 30})
    catalog.set_policy("retention", "raw", {"keep_days": 7})
    catalog.set_policy("retention", "bus", {"keep_hours": 24})
    catalog.set_policy("training", "nightly", {"cron": "0 3 * * *"})
    assert [(p["kind"], p["name"], p["body"]) for p in catalog.policies()] == [
        ("retention", "bus", {"keep_hours": 24}),
        ("retention", "raw", {"keep_days": 7}),
        ("training", "nightly", {"cron": "0 3 * * *"}),
    ]
    assert [p["name"] for p in catalog.policies("training")] == ["nightly"]
    assert catalog.delete_policy("retention", "bus") is True
    assert catalog.delete_policy("retention", "bus") is False
    assert [p["name"] for p in catalog.policies("retention")] == ["raw"]
    with pytest.raises(InputError, match="policy name"):
        catalog.set_policy("retention", "", {})


def test_audit_log_is_append_only_newest_first(catalog):
    for i in range(5):
        catalog.audit("retention", "delete", f"lake/raw/date=2024-01-0{i + 1}", {"rows": i})
    catalog.audit("admin", "promote", "models/ses/2")
    log = catalog.audit_log(limit=3)
    assert [(e["actor"], e["action"], e["target"], e["detail"]) for e in log] == [
        ("admin", "promote", "models/ses/2", {}),
        ("retention", "delete", "lake/raw/date=2024-01-05", {"rows": 4}),
        ("retention", "delete", "lake/raw/date=2024-01-04", {"rows": 3}),
    ]
    assert log[0]["id"] > log[1]["id"] and log[0]["at"] >= log[1]["at"]
    assert len(catalog.audit_log()) == 6
    with pytest.raises(InputError, match="actor"):
        catalog.audit("", "delete", "x")


def test_database_errors_are_translated_and_name_the_operation(tmp_path):
    path = tmp_path / "catalog.db"
    with Catalog(f"sqlite:///{path}") as cat:
        cat.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"catalog.db{suffix}").unlink(missing_ok=True)
        with pytest.raises(
            CatalogError, match=r"saving watermark a/b: no such table: watermarks \(catalog sqlite"
        ):
            cat.set_watermark("a", "b", {})


# ---------------------------------------------------------------- several processes at once

WORKERS = 4
WORK_SECONDS = 3.0


def _worker(uri: str, index: int, seconds: float) -> None:
    """One process: opens the (possibly fresh) catalog and writes runs, watermarks, forecasts."""
    catalog = Catalog(uri)
    store = PredictionStore(catalog.engine)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        run_id = f"p{index}-{n}"
        catalog.start_run(RunRecord(run_id, "pipeline", f"worker{index}", "running", datetime.now(UTC)))
        catalog.set_watermark(f"worker{index}", "k", {"n": n})
        origin = (n * WORKERS + index) * 60 * US  # distinct origins, overlapping targets
        store.write(
            pa.table(
                {
                    "series_id": ["shared/x/y"] * 5 + [f"own/x/w{index}"] * 5,
                    "origin_ts": [origin] * 10,
                    "target_ts": [origin + k * 60 * US for k in range(1, 6)] * 2,
                    "step": list(range(1, 6)) * 2,
                    "value": [float(n)] * 10,
                    "model": ["ses"] * 10,
                }
            )
        )
        catalog.finish_run(run_id, "success", rows_out=10)
        n += 1
    catalog.set_watermark(f"worker{index}", "done", {"n": n})
    catalog.close()


if __name__ == "__catalog_worker__":  # run in a spawned process by the test below
    _worker(**WORKER_ARGS)  # type: ignore[name-defined]  # noqa: F821


def test_four_processes_write_one_fresh_sqlite_catalog(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=runpy.run_path,
            args=(__file__,),
            kwargs={
                "run_name": "__catalog_worker__",
                "init_globals": {"WORKER_ARGS": {"uri": uri, "index": i, "seconds": WORK_SECONDS}},
            },
        )
        for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    with Catalog(uri, migrate=False) as cat:
        store = PredictionStore(cat.engine)
        counts = [cat.get_watermark(f"worker{i}", "done")["n"] for i in range(WORKERS)]
        assert min(counts) > 0
        for i, n in enumerate(counts):
            assert cat.get_watermark(f"worker{i}", "k") == {"n": n - 1}
            runs = cat.runs(name=f"worker{i}", limit=100_000)
            assert len(runs) == n and {r.status for r in runs} == {"success"}
            own = store.raw(f"own/x/w{i}")
            assert own.num_rows == 5 * n
        shared = store.raw("shared/x/y")
        assert shared.num_rows == 5 * sum(counts)
        blended = store.blended("shared/x/y")
        per_target = shared.group_by("target_ts").aggregate([("value", "count")])
        expected = dict(
            zip(per_target["target_ts"].to_pylist(), per_target["value_count"].to_pylist(), strict=True)
        )
        got = dict(zip(blended["target_ts"].to_pylist(), blended["updates"].to_pylist(), strict=True))
        assert got == expected
