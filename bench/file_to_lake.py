"""Files → lake: points per second through the file source and ``ingest_to_lake``.

An AMPds2-style wide file (``UNIX_TS`` + ``WHE`` + 50 sub-meter columns, minutely) holding
about 10 M x scale points is generated once, written as CSV and as Parquet, and each is
ingested into a fresh lake (date partitions) with a fresh SQLite catalog: parse, unpivot,
write Parquet partitions, update the series statistics, save the watermark per batch.
Also reported without a target: the source alone (parse + unpivot, no lake).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from bench import Result
from sparkhu.connectors.files import FileSource, read_all
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.demo.generator import generate
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

AMPDS2 = {"series_prefix": "ampds2/electricity/", "field_suffix": ".P"}
"""AMPds2 wide files: column WHE → series ampds2/electricity/WHE.P."""


METERS = 50
TARGET = 2_000_000.0


def run(scale: float) -> list[Result]:
    columns = METERS + 1
    days = max(1, math.ceil(10_000_000 * scale / (columns * 1440)))
    data = generate(days=days, meters=METERS, seed=1, defects=False)
    points = data.points.num_rows
    detail = f"{points:,} points = {len(data.wide):,} lines x {columns} meters"
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-files-") as tmp:
        root = Path(tmp)
        files = {
            "CSV": data.write_csv(root / "Electricity_P.csv"),
            "Parquet": data.write_parquet(root / "wide.parquet"),
        }
        for label, path in files.items():
            started = time.perf_counter()
            read = read_all(FileSource(f"bench-read-{label}", path, **AMPDS2)).num_rows
            read_s = time.perf_counter() - started

            lake = Lake(str(root / f"lake-{label}"))
            with Catalog(f"sqlite:///{root / f'catalog-{label}.db'}") as catalog:
                stats = ingest_to_lake(
                    FileSource(f"bench-{label}", path, **AMPDS2), lake, catalog, zone="raw", dataset="ampds2"
                )
            rate = stats.points / stats.seconds
            size = f"{path.stat().st_size / 1e6:,.0f} MB"
            results.append(
                Result("files", f"{label} → lake", rate, "points/s", ">= 2,000,000", rate >= TARGET,
                       f"{detail}; {size}; {stats.batches} batches in {stats.seconds:.2f} s")
            )  # fmt: skip
            results.append(
                Result("files", f"{label} source alone", read / read_s, "points/s", "", None,
                       f"parse + unpivot of {read:,} points in {read_s:.2f} s")
            )  # fmt: skip
    return results
