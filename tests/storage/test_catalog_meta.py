"""The metadata half of the catalog, on SQLite and PostgreSQL: lake writes recorded per partition,
series descriptions, tags and declared lineage (all-or-nothing edits), feature views, migration."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from alembic import command

from sparkhu.errors import InputError, NotFoundError
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, SeriesInfo, migrate
from sparkhu.storage.catalog.records import SeriesMeta
from sparkhu.storage.lake import Lake
from sparkhu.storage.writes import writing_run

DAY = 86_400_000_000
MIN = 60_000_000


def test_lake_writes_are_recorded_per_partition_with_range_and_writer(catalog: Catalog, tmp_path):
    lake = Lake(tmp_path / "lake", on_write=catalog.record_writes)
    with writing_run("ingest:meters"):
        lake.write("raw", "home_power", points("home/power/P", [0, MIN, DAY + 5 * MIN], [1.0, 2.0, 3.0]))
    lake.write("raw", "home_power", points("home/power/P", [2 * MIN], [4.0]))
    with writing_run("run-7"):
        lake.replace("clean", "home_power", points("home/power/P", [MIN], [2.0]), [date(1970, 1, 1)])
        lake.replace(
            "clean", "home_power", points("home/power/P", [3 * MIN, 4 * MIN], [2.0, 3.0]), [date(1970, 1, 1)]
        )

    recorded = {
        (p["zone"], p["key"]): p for z in ("raw", "clean") for p in catalog.list_partitions(z, "home_power")
    }
    first = recorded[("raw", "date=1970-01-01")]
    assert (first["files"], first["rows"], first["run_id"]) == (2, 3, None)  # the last writer named none
    assert first["first_ts"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert first["last_ts"] == datetime(1970, 1, 1, 0, 2, tzinfo=UTC)
    assert recorded[("raw", "date=1970-01-02")]["run_id"] == "ingest:meters"
    clean = recorded[("clean", "date=1970-01-01")]
    assert (clean["files"], clean["rows"], clean["run_id"]) == (1, 2, "run-7")  # replaced, not added
    assert clean["first_ts"] == datetime(1970, 1, 1, 0, 3, tzinfo=UTC)
    on_disk = {
        (p.zone, p.key): (p.files, p.rows, p.bytes)
        for z in ("raw", "clean")
        for p in lake.partitions(z, "home_power")
    }
    assert on_disk == {k: (p["files"], p["rows"], p["bytes"]) for k, p in recorded.items()}
    totals = {(d["zone"], d["dataset"]): d for d in catalog.datasets()}
    assert totals[("raw", "home_power")]["rows"] == 4
    assert totals[("raw", "home_power")]["partitions"] == 2
    assert totals[("clean", "home_power")]["last_ts"] == datetime(1970, 1, 1, 0, 4, tzinfo=UTC)


def _three(catalog: Catalog) -> None:
    catalog.upsert_series(SeriesInfo.of("home/power/kitchen", tags={"room": "kitchen", "floor": "1"}))
    catalog.upsert_series(SeriesInfo.of("home/power/dryer", tags={"room": "laundry"}))
    catalog.upsert_series(SeriesInfo.of("home/power/total"))


def test_series_are_searched_by_tag_and_text_and_edited(catalog: Catalog):
    _three(catalog)
    catalog.describe_series("home/power/total", "Whole-house meter, Kitchen included")
    assert [s.series_id for s in catalog.search_series(tags={"room": "kitchen"})] == ["home/power/kitchen"]
    assert [s.series_id for s in catalog.search_series(text="KITCHEN")] == [
        "home/power/kitchen",
        "home/power/total",
    ]
    assert catalog.search_series(tags={"room": "kitchen"}, text="total") == []
    assert [s.series_id for s in catalog.search_series(text="_")] == []  # LIKE wildcards are literal
    tags = catalog.tag_series("home/power/dryer", {"room": "utility", "phase": 2}, ["room"])
    assert tags == {"room": "utility", "phase": "2"}
    assert [s.series_id for s in catalog.search_series(tags={"phase": "2"})] == ["home/power/dryer"]
    assert dict(catalog.tag_keys()) == {"floor": 1, "phase": 1, "room": 2}
    assert catalog.series("home/power/total").description.startswith("Whole-house")
    # what the pipeline recorded survives a tag edit
    catalog.update_series_meta("home/power/kitchen", seasonal_periods=[1440])
    catalog.tag_series("home/power/kitchen", {"appliance": "oven"})
    assert catalog.series("home/power/kitchen").extra == {"seasonal_periods": [1440]}


def test_unknown_tags_and_series_are_named(catalog: Catalog):
    _three(catalog)
    with pytest.raises(NotFoundError, match="tag 'colour' is on no series"):
        catalog.search_series(tags={"colour": "red"})
    with pytest.raises(InputError, match="has no tag 'colour'"):
        catalog.tag_series("home/power/kitchen", remove=["colour"])
    with pytest.raises(InputError, match="tag key 'bad key'"):
        catalog.tag_series("home/power/kitchen", {"bad key": "x"})
    with pytest.raises(NotFoundError, match="home/power/oven"):
        catalog.describe_series("home/power/oven", "no such series")


def test_an_import_is_all_or_nothing_and_names_the_record(catalog: Catalog):
    _three(catalog)
    good = SeriesMeta("home/power/kitchen", description="Kitchen", tags={"room": "kitchen"}, origin="m.csv:2")
    with pytest.raises(
        InputError, match=r"m\.csv:3: series_id: series 'home/power/oven' is not in the catalog"
    ):
        catalog.apply_series_meta([good, SeriesMeta("home/power/oven", description="x", origin="m.csv:3")])
    with pytest.raises(InputError, match=r"m\.csv:3: upstream: upstream series 'home/power/oven'"):
        catalog.apply_series_meta(
            [good, SeriesMeta("home/power/total", upstream=["home/power/oven"], origin="m.csv:3")]
        )
    with pytest.raises(
        InputError,
        match=r"m\.csv:4: series_id: series 'home/power/kitchen' appears twice \(first at m\.csv:2\)",
    ):
        catalog.apply_series_meta([good, SeriesMeta("home/power/kitchen", origin="m.csv:4")])
    assert catalog.series("home/power/kitchen").description is None  # nothing was written

    catalog.apply_series_meta(
        [SeriesMeta("home/power/total", upstream=["home/power/kitchen", "home/power/dryer"], origin="a:1")]
    )
    with pytest.raises(
        InputError, match=r"b:1: upstream: upstream links of 'home/power/kitchen' form a cycle"
    ):
        catalog.apply_series_meta(
            [good, SeriesMeta("home/power/kitchen", upstream=["home/power/total"], origin="b:1")][1:]
        )
    with pytest.raises(InputError, match="its own upstream"):
        catalog.apply_series_meta([SeriesMeta("home/power/dryer", upstream=["home/power/dryer"])])
    assert catalog.series_links("home/power/total") == (["home/power/dryer", "home/power/kitchen"], [])
    assert catalog.series_links("home/power/kitchen") == ([], ["home/power/total"])
    exported = {row["series_id"]: row for row in catalog.export_series_meta(prefix="home/power/t")}
    assert exported == {
        "home/power/total": {
            "series_id": "home/power/total",
            "unit": None,
            "description": None,
            "tags": {},
            "upstream": ["home/power/dryer", "home/power/kitchen"],
        }
    }


def test_feature_views_are_versioned_and_models_linked(catalog: Catalog):
    body = {"dataset": "home_power", "zone": "clean", "window": 60}
    assert catalog.put_feature_view("house", body, "the house") == 1
    assert catalog.put_feature_view("house", body) == 1  # unchanged: same version
    assert catalog.put_feature_view("house", {**body, "window": 120}) == 2
    assert catalog.feature_view("house")["body"]["window"] == 120
    assert catalog.feature_view("house", 1)["body"]["window"] == 60
    assert [(v["name"], v["version"], v["versions"]) for v in catalog.feature_views()] == [("house", 2, 2)]
    with writing_run("train-1"):
        catalog.register_model("sparkhu.home.power.P", "1", "home/power/P", "models:/m/1", {"mase": 0.5})
    assert catalog.link_feature_view("train-1", "house", 2) == 1
    [model] = catalog.models()
    assert (model["run_id"], model["feature_view"], model["feature_view_version"]) == ("train-1", "house", 2)
    with pytest.raises(NotFoundError, match="feature view 'house' version 9 is not defined"):
        catalog.feature_view("house", 9)


def test_migration_0004_indexes_the_tags_already_stored(tmp_path):
    uri = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(uri)
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0002")
        conn.execute(
            sa.text(
                "INSERT INTO series (series_id, source, measurement, field, count, tags, updated_at) "
                "VALUES ('a/b/c', 'a', 'b', 'c', 0, :tags, 0)"
            ),
            {"tags": '{"room": "kitchen", "_extra": {"period": 60}}'},
        )
    engine.dispose()
    with Catalog(uri) as catalog:
        assert [s.series_id for s in catalog.search_series(tags={"room": "kitchen"})] == ["a/b/c"]
        assert catalog.series("a/b/c").extra == {"period": 60}


def test_series_made_by_ingestion_are_found_by_id_prefix_then_by_word_after_reindex(catalog: Catalog):
    catalog.update_series_stats(points("home/power/kettle", [0], [1.0]))
    assert [s.series_id for s in catalog.search_series(text="home/power/ke")] == ["home/power/kettle"]
    assert catalog.search_series(text="kettle") == []
    assert catalog.index_series_words() == 1
    assert [s.series_id for s in catalog.search_series(text="KETT")] == ["home/power/kettle"]


def test_lineage_facts_of_one_series(catalog: Catalog, tmp_path):
    from sparkhu.storage.catalog import RunRecord

    lake = Lake(tmp_path / "lake", on_write=catalog.record_writes)
    lake.write("raw", "home_power", points("home/power/P", [0, DAY], [1.0, 2.0]))
    for sid in ("home/power/P", "home/power/Q", "home/power/total"):
        catalog.upsert_series(SeriesInfo.of(sid))
    catalog.apply_series_meta([SeriesMeta("home/power/total", upstream=["home/power/P"])])
    catalog.upsert_source("meter", "file", {"source": "home", "measurement": "power"})
    catalog.upsert_source("other", "file", {"source": "lab", "measurement": "temp"})
    started = datetime(2024, 1, 1, tzinfo=UTC)
    params = {"inputs": ["raw/home_power"], "outputs": ["clean/home_power"]}
    validate = [RunRecord(f"v{i}", "pipeline", "home_power/validate", "success", started, params=params)
                for i in range(3)]  # fmt: skip
    catalog.record_runs(validate)
    catalog.record_runs(
        [RunRecord("g1", "train", "global/nlinear", "success", started, params={"dataset": "raw/home_power"})]
    )
    catalog.register_model("sparkhu.home.power.P", "1", "home/power/P", "models:/p/1", {}, run_id=None)
    catalog.register_model("sparkhu.global.nlinear", "4", None, "models:/g/4", {}, run_id="g1")
    catalog.link_model_series("sparkhu.global.nlinear", "4", ["home/power/P", "home/power/Q"])
    catalog.audit("retention", "delete", "raw/home_power/date=1970-01-01", {})
    catalog.audit("retention", "skip", "raw/home_power/date=1970-01-02", {})
    catalog.audit("retention", "delete", "raw/home_power.other/date=1970-01-01", {})  # another dataset
    facts = catalog.lineage_facts("home/power/P")
    assert [s["name"] for s in facts["sources"]] == ["meter"]
    [task] = facts["task_runs"]
    assert (task["name"], task["runs"]) == ("home_power/validate", 3)
    assert [(m["name"], m["version"]) for m in facts["models"]] == [
        ("sparkhu.home.power.P", "1"),
        ("sparkhu.global.nlinear", "4"),
    ]
    assert [r["run_id"] for r in facts["train_runs"]] == ["g1"]
    assert [(d["zone"], d["dataset"], d["rows"]) for d in facts["datasets"]] == [("raw", "home_power", 2)]
    assert [(a["action"], a["target"]) for a in facts["retention"]] == [
        ("delete", "raw/home_power/date=1970-01-01")
    ]
    assert (facts["upstream"], facts["downstream"]) == ([], ["home/power/total"])
    assert [m["name"] for m in catalog.lineage_facts("home/power/Q")["models"]] == ["sparkhu.global.nlinear"]
