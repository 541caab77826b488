"""The connector runner on real components: a bus and a catalog, a local lake, real processes.

The ``parts`` tests are integration tests: SQLite bus and catalog by default, Kafka (Tansu) and
PostgreSQL with ``--sparkhu-config=distributed`` (the ``settings`` fixture names them).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from sparkhu.config import Settings
from sparkhu.connectors.files import FileSource, read_file
from sparkhu.connectors.replay import ReplaySource
from sparkhu.connectors.runner import ingest_to_lake, pump
from sparkhu.demo.generator import generate
from sparkhu.errors import ConnectorError
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.stream import Bus, open_bus
from sparkhu.stream.codecs import decode_points

AMPDS2 = {"series_prefix": "ampds2/electricity/", "field_suffix": ".P"}
"""AMPds2 wide files: column WHE → series ampds2/electricity/WHE.P."""


PLAIN = pa.schema([("series_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("value", pa.float64())])


def keyed(table: pa.Table) -> list[tuple[str, int, float]]:
    t = table.cast(PLAIN)
    return sorted(
        zip(
            t["series_id"].to_pylist(),
            t["ts"].cast(pa.int64()).to_pylist(),
            t["value"].to_pylist(),
            strict=True,
        )
    )


@pytest.fixture
def parts(tmp_path: Path, settings: Settings):
    lake = Lake(str(tmp_path / "lake"))
    catalog = Catalog(settings.storage.catalog)
    bus = open_bus(settings.bus.uri, client=settings.bus.client, consumer=settings.bus.consumer)
    yield lake, catalog, bus
    bus.close()
    catalog.close()


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    return generate(days=2, meters=11, seed=3).write_csv(folder / "Electricity_P.csv")


def drain(bus: Bus, topic: str) -> pa.Table:
    """Every point of ``topic``: poll until quiet (at once on SQLite, 3 s on Kafka: group join, fetch)."""
    quiet_s = 3.0 if bus.uri.startswith("kafka://") else 0.0
    with bus.consumer("test", [topic]) as consumer:
        tables, idle_since = [], time.monotonic()
        while True:
            messages = consumer.poll(max_messages=10_000, timeout=0.05 if quiet_s else 0)
            tables += [decode_points(m.value) for m in messages]
            if messages:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= quiet_s:
                return pa.concat_tables(tables)


@pytest.mark.integration
def test_pump_publishes_every_point_then_its_watermark(parts, csv_file: Path, tmp_path: Path):
    lake, catalog, bus = parts
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("UNIX_TS,WHE\n0,1\n60,abc\n")
    source = FileSource("meters", [csv_file, bad_csv], batch_rows=400, **AMPDS2)
    seen: list[int] = []
    stats = pump(
        source,
        bus,
        "sparkhu.ampds2.electricity",
        catalog,
        lake=lake,
        quarantine_dataset="ampds2",
        progress=seen.append,
    )
    expected, _ = read_file(csv_file, **AMPDS2)
    assert stats.points == expected.num_rows + 1 and stats.quarantined == 1
    assert stats.batches == 8 + 1 and seen[-1] == stats.points and stats.seconds > 0
    assert keyed(drain(bus, "sparkhu.ampds2.electricity")) == sorted(
        [*keyed(expected), ("ampds2/electricity/WHE.P", 0, 1.0)]
    )
    quarantined = lake.read_quarantine("ampds2").to_pylist()
    assert [(r["location"], r["field"], r["reason"]) for r in quarantined] == [
        ("line 3", "WHE", "not a number")
    ]
    mark = catalog.get_watermark("meters", "sparkhu.ampds2.electricity")
    assert all(state["done"] for state in mark["files"].values())
    again = pump(source, bus, "sparkhu.ampds2.electricity", catalog, lake=lake)
    assert again.points == 0 and again.quarantined == 0
    runs = catalog.runs(kind="connector", name="meters")
    (run,) = runs  # the second, idle run left no record
    assert (
        run.status == "success"
        and run.rows_out == stats.points
        and run.params == {"key": "sparkhu.ampds2.electricity"}
    )


@pytest.mark.integration
def test_pump_stops_when_told_and_resumes_exactly(parts):
    lake, catalog, bus = parts
    data = generate(days=1, meters=10, seed=2, defects=False).points
    clock = [0.0]

    def source() -> ReplaySource:
        return ReplaySource(
            "live",
            data,
            shift=timedelta(days=3196),
            speed=3600.0,
            clock=lambda: clock[0],
            sleep=lambda s: clock.__setitem__(0, clock[0] + s),
            tick_s=0.5,
        )

    stop = threading.Event()
    batches = []

    def progress(points: int) -> None:
        batches.append(points)
        if len(batches) == 5:
            stop.set()

    first = pump(source(), bus, "live", catalog, lake=lake, stop=stop, progress=progress)
    assert first.batches == 5 and 0 < first.points < data.num_rows
    second = pump(source(), bus, "live", catalog, lake=lake, stop=lambda: False)
    assert first.points + second.points == data.num_rows
    out = keyed(drain(bus, "live"))
    shift = 276_134_400_000_000
    assert out == sorted((s, t + shift, v) for s, t, v in keyed(data))


@pytest.mark.integration
def test_ingest_to_lake_writes_then_watermarks_and_registers_series(parts, csv_file: Path):
    lake, catalog, _ = parts
    source = FileSource("history", csv_file, batch_rows=1000, **AMPDS2)
    stats = ingest_to_lake(source, lake, catalog, zone="raw", dataset="ampds2_electricity")
    expected, _ = read_file(csv_file, **AMPDS2)
    assert stats.points == expected.num_rows
    stored = lake.read("raw", "ampds2_electricity")
    assert keyed(stored) == sorted(set(keyed(expected)))  # duplicated lines collapse on read
    assert catalog.get_watermark("history", "lake:raw/ampds2_electricity")["files"][str(csv_file)]["done"]
    assert {s.series_id for s in catalog.list_series(prefix="ampds2/")} == {
        f"ampds2/electricity/{m}.P" for m in ["WHE", *generate(days=1, meters=11, seed=3).meters]
    }
    assert ingest_to_lake(source, lake, catalog, zone="raw", dataset="ampds2_electricity").points == 0


def test_a_failing_source_is_reported_and_recorded(parts, tmp_path: Path):
    lake, catalog, bus = parts
    with pytest.raises(ConnectorError, match=r"gone\.csv: no such file"):
        ingest_to_lake(
            FileSource("broken", tmp_path / "gone.csv", **AMPDS2), lake, catalog, zone="raw", dataset="x"
        )
    (run,) = catalog.runs(kind="connector", name="broken")
    assert run.status == "failed" and "gone.csv" in (run.error or "")
    stats = pump(_only_bad(tmp_path), bus, "t", catalog)
    assert stats.quarantined == 1 and stats.quarantine[0].num_rows == 1  # kept in memory without a lake


def test_a_direct_ingest_keeps_every_valid_row_beside_out_of_range_ones(parts, tmp_path: Path):
    lake, catalog, _ = parts
    path = tmp_path / "Electricity_P.csv"  # line 3: a millisecond timestamp in a seconds file
    path.write_text("UNIX_TS,WHE,RSE\n1333263600,1,10\n1333263660000,2,20\n1333263720,3,30\n")
    stats = ingest_to_lake(FileSource("meters", path, **AMPDS2), lake, catalog, zone="raw", dataset="m")
    assert stats.points == 4 and stats.quarantined == 1
    assert [v for _, _, v in keyed(lake.read("raw", "m"))] == [10.0, 30.0, 1.0, 3.0]  # RSE, then WHE
    assert lake.read_quarantine("m").column("location").to_pylist() == ["line 3"]


def test_points_a_source_shifts_out_of_range_are_quarantined_by_the_runner(parts):
    lake, catalog, _ = parts
    last_day = 253_370_678_400_000_000  # 9998-12-31T00:00Z
    history = points("a/b/c", [last_day - 86_400_000_000, last_day], [1.0, 2.0])
    replay = ReplaySource("late", history, shift=timedelta(days=1), speed=float("inf"))
    stats = ingest_to_lake(replay, lake, catalog, zone="raw", dataset="late")
    assert stats.points == 1 and stats.quarantined == 1
    assert lake.read("raw", "late").column("value").to_pylist() == [1.0]
    (row,) = lake.read_quarantine("late").to_pylist()
    assert (row["source"], row["location"], row["field"]) == ("late", "batch 1 row 2", "ts")
    assert "years 1 to 9998" in row["reason"]


def _only_bad(tmp_path: Path) -> FileSource:
    path = tmp_path / "only_bad.csv"
    path.write_text("UNIX_TS,WHE\nx,1\n")
    return FileSource("only-bad", path, **AMPDS2)


WORKER = textwrap.dedent(
    """
    import sys
    from sparkhu.connectors.files import FileSource
    from sparkhu.connectors.runner import ingest_to_lake
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake

    csv, root = sys.argv[1], sys.argv[2]
    catalog = Catalog(f"sqlite:///{root}/catalog.db")
    source = FileSource(
        "kill-test", csv, batch_rows=150, series_prefix="ampds2/electricity/", field_suffix=".P"
    )
    stats = ingest_to_lake(source, Lake(f"{root}/lake"), catalog, zone="raw", dataset="meters",
                           progress=lambda n: print(n, flush=True), checkpoint_points=2_000)
    print("done", stats.points, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_mid_ingest_then_restart_holds_every_point_exactly_once(tmp_path: Path):
    csv = generate(days=10, meters=11, seed=9).write_csv(tmp_path / "Electricity_P.csv")
    (tmp_path / "worker.py").write_text(WORKER)
    argv = [sys.executable, str(tmp_path / "worker.py"), str(csv), str(tmp_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for _ in range(8):  # let it write some batches, then kill it wherever it is
            line = proc.stdout.readline()
            assert line and not line.startswith("done"), proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    expected, _ = read_file(csv, **AMPDS2)
    resumed = int(done.stdout.strip().splitlines()[-1].split()[1])
    assert 0 < resumed < expected.num_rows  # the restart resumed from the watermark
    stored = Lake(str(tmp_path / "lake")).read("raw", "meters", dedup=True)
    assert keyed(stored) == sorted(set(keyed(expected)))
