"""Exact series counts: what counting each (series, ts) once costs on the lake write path.

The lake sink and ``ingest`` write a batch to the lake and update the catalog's series
statistics (:func:`sparkhu.connectors.landing.land`). Before, the statistics only added the
batch's row count (over-counting re-delivered batches); now a batch's points are checked for
in-batch doubles and, where not newer than the series' last counted point, looked up in the
lake. Measured A/B/B/A in the same run against the additive update it replaced (``lake.write``
+ ``Catalog.update_series_stats``): 5 M x scale time-major points of 100 series in two
batches into a fresh lake and SQLite catalog, then the same batches delivered again (the
re-delivery after a crash, where the lake lookup runs).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench import Result, interleaved
from bench.bus_to_lake import make_points
from sparkhu.connectors.landing import land
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

NAME = "exact series counts"


def run(scale: float) -> list[Result]:
    """Time the exact and the additive write paths, first writes and re-deliveries."""
    total = max(200_000, int(5_000_000 * scale))
    table = make_points(total)
    half = table.num_rows // 2
    batches = [table.slice(0, half), table.slice(half)]
    root = Path(tempfile.mkdtemp(prefix="sparkhu-bench-counts-"))
    runs = [0]
    counted: dict[str, int] = {}

    def write(exact: bool, again: bool) -> None:
        runs[0] += 1
        home = root / f"run{runs[0]}"
        lake = Lake(str(home / "lake"))
        with Catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
            for batch in batches + (batches if again else []):
                if exact:
                    land(lake, catalog, "raw", "bench", batch)
                else:
                    lake.write("raw", "bench", batch)
                    catalog.update_series_stats(batch)
            counted["exact" if exact else "additive"] = sum(s.count for s in catalog.list_series())
        shutil.rmtree(home)

    try:
        ours, peer = interleaved(lambda: write(True, False), lambda: write(False, False))
        ours_again, peer_again = interleaved(lambda: write(True, True), lambda: write(False, True))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = table.num_rows
    ratio, ratio_again = peer / ours, peer_again / ours_again
    detail = f"{n:,} points, 100 series, 2 batches; counts after a re-delivery: exact {counted['exact']:,}, "
    detail += f"additive {counted['additive']:,}"
    return [
        Result(
            NAME,
            "lake write + exact counts, new points",
            n / ours,
            "points/s",
            target="ratio >= 0.85",
            met=ratio >= 0.85,
            detail=detail,
            peer="lake write + additive counts (before)",
            ratio=ratio,
        ),
        Result(
            NAME,
            "lake write + exact counts, every batch delivered twice",
            2 * n / ours_again,
            "points/s",
            target="counts exact",
            met=counted["exact"] == n,
            detail=f"the second delivery looks its {n:,} points up in the lake",
            peer="lake write + additive counts (before)",
            ratio=ratio_again,
        ),
    ]
