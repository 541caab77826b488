"""Files → lake: points per second from a file to date-partitioned Parquet, beside DuckDB and pyarrow.

Three inputs of about 10 M points x scale each:

* **long CSV**: ``series_id,ts,value`` (epoch seconds), 100 series of minutely points, all series of
  one minute together;
* **wide CSV** and **wide Parquet**: AMPds2-style (``UNIX_TS`` + ``WHE`` + 50 sub-meter columns,
  minutely), each column a series ``ampds2/electricity/<column>.P``.

Each is ingested into a fresh lake (``date=`` partitions) with a fresh SQLite catalog by
``ingest_to_lake`` (parse, unpivot, write, series statistics, watermark), and the same file is
turned into the same partitioned points (series_id, ts as timestamp, value; one folder per UTC
day, zstd) by the two tools a user would otherwise write by hand:

* **DuckDB** ``COPY (SELECT ... FROM read_csv/read_parquet ...) TO ... (PARTITION_BY (date))``
  (wide: ``UNPIVOT`` first);
* **pyarrow** ``read_csv``/``read_table`` (wide: unpivoted with numpy) then ``write_to_dataset``.

The three run interleaved (ours, DuckDB, pyarrow, pyarrow, DuckDB, ours; medians); ``ratio`` is
sparkhu's speed over the peer's. Files written and peak memory (RSS of a fresh process running the
same ingest once, measured apart) are in the detail column.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from bench import Result, interleaved_all

AMPDS2 = {"series_prefix": "ampds2/electricity/", "field_suffix": ".P"}
"""AMPds2 wide files: column WHE → series ampds2/electricity/WHE.P."""

METERS = 50
LONG_SERIES = 100
T0 = 1_704_067_200  # 2024-01-01T00:00Z
TARGET_RATIO = 1.2
SIDES = ("sparkhu", "DuckDB COPY PARTITION_BY", "pyarrow write_to_dataset")


def make_long_csv(path: Path, points: int, series: int = LONG_SERIES, seed: int = 1) -> Path:
    """``series_id,ts,value`` of ``series`` minutely series, all series of one minute together."""
    minutes = max(1, points // series)
    ts = np.repeat(T0 + np.arange(minutes, dtype=np.int64) * 60, series)
    names = pa.array([f"bench/meter{i:03d}/P" for i in range(series)])
    ids = pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(series, dtype=np.int32), minutes)), names)
    values = np.round(np.random.default_rng(seed).normal(1000.0, 50.0, size=len(ts)), 3)
    table = pa.table({"series_id": ids.cast(pa.string()), "ts": ts, "value": values})
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="none"))
    return path


def make_wide(root: Path, points: int) -> tuple[Path, Path]:
    """The AMPds2-style wide file of about ``points`` points as CSV and as Parquet."""
    from sparkhu.demo.generator import generate

    days = max(1, math.ceil(points / ((METERS + 1) * 1440)))
    data = generate(days=days, meters=METERS, seed=1, defects=False)
    return data.write_csv(root / "Electricity_P.csv"), data.write_parquet(root / "wide.parquet")


# ---- the three sides: each writes ``out`` and returns (points, files) -----------------------------


def ours(path: Path, out: Path) -> tuple[int, int]:
    """``ingest_to_lake`` of ``path`` into a fresh lake and catalog under ``out``."""
    from sparkhu.connectors.files import FileSource
    from sparkhu.connectors.runner import ingest_to_lake
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake

    options = {} if _is_long(path) else AMPDS2
    out.mkdir(parents=True)
    with Catalog(f"sqlite:///{out / 'catalog.db'}") as catalog:
        stats = ingest_to_lake(
            FileSource("bench", path, **options), Lake(str(out / "lake")), catalog, dataset="d"
        )
    return stats.points, _files(out / "lake")


def duckdb_copy(path: Path, out: Path) -> tuple[int, int]:
    """The same partitioned points by DuckDB ``COPY ... PARTITION_BY``."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if path.suffix == ".parquet":
            src = f"read_parquet('{path}')"
        else:
            src = f"read_csv('{path}')"
        if _is_long(path):
            body = f"SELECT series_id, to_timestamp(ts) AS ts, value FROM {src}"
        else:
            body = (
                "SELECT 'ampds2/electricity/' || field || '.P' AS series_id, to_timestamp(UNIX_TS) AS ts, "
                f"value::DOUBLE AS value FROM (UNPIVOT {src} ON COLUMNS(* EXCLUDE (UNIX_TS)) "
                "INTO NAME field VALUE value)"
            )
        con.execute(
            f"COPY (SELECT *, strftime(ts, '%Y-%m-%d') AS date FROM ({body})) TO '{out}' "
            "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))"
        )
        (points,) = con.execute(f"SELECT count(*) FROM read_parquet('{out}/*/*.parquet')").fetchone() or (0,)
    finally:
        con.close()
    return int(points), _files(out)


def pyarrow_dataset(path: Path, out: Path) -> tuple[int, int]:
    """The same partitioned points by pyarrow: read the file, unpivot, ``write_to_dataset``."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        types = {"ts": pa.int64(), "value": pa.float64()} if _is_long(path) else {"UNIX_TS": pa.int64()}
        table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))
    if _is_long(path):
        ids, seconds, values = table["series_id"], table["ts"], table["value"]
    else:
        fields = [name for name in table.column_names if name != "UNIX_TS"]
        n = table.num_rows
        values = pa.array(np.concatenate([table[f].to_numpy().astype(np.float64) for f in fields]))
        seconds = pa.array(np.tile(table["UNIX_TS"].to_numpy(), len(fields)))
        names = pa.array([f"ampds2/electricity/{f}.P" for f in fields])
        ids = pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(len(fields), dtype=np.int32), n)), names
        )
        keep = pc.invert(pc.is_nan(values))
        ids, seconds, values = ids.filter(keep), seconds.filter(keep), values.filter(keep)
    ts = pc.multiply(seconds, 1_000_000).cast(pa.timestamp("us", tz="UTC"))
    points = pa.table({"series_id": ids, "ts": ts, "value": values, "date": ts.cast(pa.date32())})
    pq.write_to_dataset(points, out, partition_cols=["date"], compression="zstd")
    return points.num_rows, _files(out)


def _is_long(path: Path) -> bool:
    return path.name.startswith("long")


def _files(root: Path) -> int:
    return sum(1 for p in root.rglob("*.parquet"))


WORK: dict[str, Callable[[Path, Path], tuple[int, int]]] = dict(
    zip(SIDES, (ours, duckdb_copy, pyarrow_dataset), strict=True)
)


def own_peak_mb() -> float:
    """This process's peak resident memory (``VmHWM``, reset by exec), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb(side: str, path: Path, out: Path) -> float:
    """Peak RSS (MB) of a fresh process that runs ``side`` on ``path`` once (imports included)."""
    # VmHWM, not ru_maxrss: Linux keeps a forked child's ru_maxrss at least its parent's
    code = (
        "import json, sys; from pathlib import Path; from bench.file_to_lake import WORK, own_peak_mb; "
        "WORK[sys.argv[1]](Path(sys.argv[2]), Path(sys.argv[3])); print(json.dumps(own_peak_mb()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, side, str(path), str(out)], capture_output=True, text=True, check=True
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def run(scale: float) -> list[Result]:
    points = max(10_000, round(10_000_000 * scale))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-files-") as tmp:
        root = Path(tmp)
        wide_csv, wide_parquet = make_wide(root, points)
        inputs = {
            "long CSV": make_long_csv(root / "long.csv", points),
            "wide CSV": wide_csv,
            "wide Parquet": wide_parquet,
        }
        runs = iter(range(1_000_000))
        for label, path in inputs.items():
            seen: dict[str, tuple[int, int]] = {}

            def side(
                name: str, path: Path = path, seen: dict[str, tuple[int, int]] = seen
            ) -> Callable[[], None]:
                def work() -> None:
                    seen[name] = WORK[name](path, root / f"out{next(runs)}")

                return work

            seconds = interleaved_all({name: side(name) for name in SIDES}, rounds=1)
            rss = {name: peak_rss_mb(name, path, root / f"rss{next(runs)}") for name in SIDES}
            n, files = seen[SIDES[0]]
            size = f"{path.stat().st_size / 1e6:,.0f} MB"
            for peer in SIDES[1:]:
                ratio = seconds[peer] / seconds[SIDES[0]]
                results.append(
                    Result(
                        "files",
                        f"{label} → lake",
                        n / seconds[SIDES[0]],
                        "points/s",
                        target=f"ratio >= {TARGET_RATIO}",
                        met=ratio >= TARGET_RATIO,
                        peer=peer,
                        ratio=ratio,
                        detail=(
                            f"{n:,} points, {size}: {seconds[SIDES[0]]:.2f} s vs {seconds[peer]:.2f} s; "
                            f"files {files} vs {seen[peer][1]}; peak RSS {rss[SIDES[0]]:,.0f} MB vs "
                            f"{rss[peer]:,.0f} MB"
                        ),
                    )
                )
    return results


def main() -> None:
    """``python -m bench.file_to_lake SIDE FILE``: one side once, with its time and peak RSS."""
    side, path = sys.argv[1], Path(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        n, files = WORK[side](path, Path(tmp) / "out")
        took = time.perf_counter() - started
    rss = own_peak_mb()
    print(f"{side}: {n:,} points in {took:.2f} s, {files} files, peak RSS {rss:,.0f} MB")


if __name__ == "__main__":
    main()
