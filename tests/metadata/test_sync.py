"""Series metadata sync: CSV, JSON and SQL in, CSV and JSON out; an import is all or nothing and its
first bad record is named in one line (exit status 2)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from tests.metadata.conftest import sparkhu

from sparkhu.config import Settings
from sparkhu.errors import InputError
from sparkhu.metadata import sync
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.catalog.records import UNSET

IDS = ["home/power/kitchen", "home/power/dryer", "home/power/total"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose catalog knows three series."""
    home = tmp_path / "home"
    settings = Settings.load(toml_path=None, env={}, overrides={"home": str(home)})
    home.mkdir()
    with Catalog(settings.storage.catalog) as catalog:
        for sid in IDS:
            catalog.upsert_series(SeriesInfo.of(sid))
    return home


def _catalog(home: Path) -> Catalog:
    return Catalog(Settings.load(toml_path=None, env={}, overrides={"home": str(home)}).storage.catalog)


def test_csv_import_export_round_trip(home: Path, tmp_path: Path, capsys):
    src = tmp_path / "meta.csv"
    src.write_text(
        "series_id,description,unit,tags,tag.floor,upstream\n"
        'home/power/kitchen,"Kitchen, sockets",W,room=kitchen,1,\n'
        "home/power/total,Whole house,W,,,home/power/kitchen;home/power/dryer\n"
    )
    code, out, err = sparkhu(capsys, "--home", str(home), "meta", "import", str(src))
    assert code == 0, err
    assert "imported the metadata of 2 series" in out
    for name in ("out.json", "out.csv"):
        code, _, err = sparkhu(capsys, "--home", str(home), "meta", "export", str(tmp_path / name))
        assert code == 0, err
    exported = json.loads((tmp_path / "out.json").read_text())["series"]
    kitchen = next(row for row in exported if row["series_id"] == "home/power/kitchen")
    assert kitchen == {
        "series_id": "home/power/kitchen",
        "description": "Kitchen, sockets",
        "unit": "W",
        "tags": {"floor": "1", "room": "kitchen"},
        "upstream": [],
    }
    again = {r.series_id: r for r in sync.read_file(tmp_path / "out.csv")}
    assert again["home/power/total"].upstream == ["home/power/dryer", "home/power/kitchen"]
    assert again["home/power/kitchen"].tags == {"floor": "1", "room": "kitchen"}
    code, out, _ = sparkhu(capsys, "--home", str(home), "meta", "search", "--tag", "room=kitchen", "sockets")
    assert code == 0 and "home/power/kitchen" in out and "1 series" in out


def test_json_absent_fields_are_kept(home: Path, tmp_path: Path):
    with _catalog(home) as catalog:
        catalog.tag_series("home/power/dryer", {"room": "laundry"})
        records = sync.parse_json(
            json.dumps([{"series_id": "home/power/dryer", "description": "Dryer"}]), "m.json"
        )
        assert records[0].tags is UNSET
        sync.import_records(catalog, records)
        info = catalog.series("home/power/dryer")
    assert (info.description, info.tags) == ("Dryer", {"room": "laundry"})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "id,description\na/b/c,x\n", r"m\.csv:1: the header has no series_id column"),
        ("m.csv", "series_id,colour\nhome/power/dryer,red\n", r"m\.csv:2: unknown field 'colour'"),
        ("m.csv", "series_id,tags\nhome/power/dryer,room\n", r"m\.csv:2: tags: tag 'room' has no '='"),
        ("m.csv", "series_id\nhome/power/dryer,extra\n", r"m\.csv:2: 2 cells for 1 columns"),
        ("m.json", '[{"series_id": "home/power/dryer"},', r"m\.json:1: not valid JSON"),
        ("m.json", '{"rows": []}', r'expected a list of series objects, or \{"series": \[\.\.\.\]\}'),
        (
            "m.json",
            '[{"series_id": "home/power/dryer", "upstream": 3}]',
            r"m\.json\[1\]: upstream: upstream must be",
        ),
        ("m.txt", "x", r"cannot tell the format of m\.txt"),
    ],
)
def test_malformed_files_are_one_line(home: Path, tmp_path: Path, capsys, name: str, text: str, message: str):
    path = tmp_path / name
    path.write_text(text)
    code, _, err = sparkhu(capsys, "--home", str(home), "meta", "import", str(path))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err


def test_an_import_with_one_bad_record_changes_nothing(home: Path, tmp_path: Path, capsys):
    path = tmp_path / "meta.csv"
    lines = [
        "series_id,description,upstream",
        "home/power/kitchen,Kitchen,",
        "home/power/total,Whole house,home/power/oven",  # dangling
    ]
    path.write_text("\n".join(lines) + "\n")
    code, _, err = sparkhu(capsys, "--home", str(home), "meta", "import", str(path))
    assert code == 2 and "meta.csv:3: upstream: upstream series 'home/power/oven'" in err
    path.write_text("series_id,tag.room\nhome/power/kitchen,kitchen\nhome/power/ovn,kitchen\n")
    code, _, err = sparkhu(capsys, "--home", str(home), "meta", "import", str(path))
    assert code == 2 and "meta.csv:3: series_id: series 'home/power/ovn' is not in the catalog" in err
    path.write_text(
        "series_id,upstream\nhome/power/kitchen,home/power/total\nhome/power/total,home/power/kitchen\n"
    )
    code, _, err = sparkhu(capsys, "--home", str(home), "meta", "import", str(path))
    assert code == 2 and "form a cycle" in err
    with _catalog(home) as catalog:
        assert [(r["description"], r["tags"], r["upstream"]) for r in catalog.export_series_meta()] == [
            (None, {}, []),
        ] * 3
    code, _, err = sparkhu(
        capsys, "--home", str(home), "meta", "tag", "home/power/kitchen", "--remove", "room"
    )
    assert code == 2 and "has no tag 'room'" in err
    code, _, err = sparkhu(capsys, "--home", str(home), "meta", "search", "--tag", "colour=red")
    assert code == 2 and "tag 'colour' is on no series" in err


def test_import_from_a_sql_query(home: Path, tmp_path: Path, capsys):
    ops = tmp_path / "ops.db"
    with sqlite3.connect(ops) as conn:
        conn.execute("CREATE TABLE meters (id TEXT, note TEXT, room TEXT)")
        conn.executemany(
            "INSERT INTO meters VALUES (?, ?, ?)",
            [("home/power/kitchen", "Kitchen", "kitchen"), ("home/power/dryer", None, "laundry")],
        )
    query = 'SELECT id AS series_id, note AS description, room AS "tag.room" FROM meters'
    code, _, err = sparkhu(
        capsys, "--home", str(home), "meta", "import", "--sql", f"sqlite:///{ops}", "--query", query
    )
    assert code == 0, err
    with _catalog(home) as catalog:
        assert catalog.series("home/power/kitchen").tags == {"room": "kitchen"}
        assert catalog.series("home/power/dryer").description is None
    code, _, err = sparkhu(
        capsys,
        "--home",
        str(home),
        "meta",
        "import",
        "--sql",
        f"sqlite:///{ops}",
        "--query",
        "SELECT nope FROM meters",
    )
    assert code == 2 and "query: the query failed: no such column: nope" in err
    with pytest.raises(InputError, match=r"query\[1\]: unknown field 'colour'"):
        sync.read_sql("sqlite:///:memory:", "SELECT 1 AS colour")
