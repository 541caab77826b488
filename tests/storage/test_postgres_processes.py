"""Several processes write one fresh PostgreSQL catalog at once: no deadlock, no error, nothing lost.

The PostgreSQL twin of ``test_catalog.py``'s SQLite process test: four spawned processes open
the same fresh schema (migrating it concurrently), then, from the same instant, write run
records, watermarks and forecasts — for a series of their own and for one series they all
share, with overlapping targets, so that their blends meet in the same rows.
"""

from __future__ import annotations

import multiprocessing
import runpy
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.storage.catalog import Catalog, RunRecord
from sparkhu.storage.predictions import PredictionStore

WORKERS = 4
WORK_SECONDS = 3.0
ALPHA = 0.6
US = 1_000_000
MIN = 60 * US


def _worker(uri: str, index: int, start: Any, seconds: float) -> None:
    """One process: opens the catalog, waits for the others (``start``, a barrier), then writes
    until the deadline."""
    catalog = Catalog(uri)
    store = PredictionStore(catalog.engine, alpha=ALPHA)
    start.wait()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        run_id = f"p{index}-{n}"
        catalog.start_run(RunRecord(run_id, "online", f"worker{index}", "running", datetime.now(UTC)))
        catalog.set_watermark(f"worker{index}", "k", {"n": n})
        origin = (n * WORKERS + index) * MIN  # distinct origins; targets overlap across workers
        targets = [origin + k * MIN for k in range(1, 6)]
        store.write(
            pa.table(
                {
                    "series_id": ["shared/x/y"] * 5 + [f"own/x/w{index}"] * 5,
                    "origin_ts": [origin] * 10,
                    "target_ts": targets * 2,
                    "step": list(range(1, 6)) * 2,
                    # shared: one value per target, so any arrival order blends to it;
                    # own: a value per forecast, blended in this worker's (origin) order
                    "value": [t / MIN for t in targets] + [float(n * 10 + k) for k in range(1, 6)],
                    "model": ["ses"] * 10,
                }
            )
        )
        catalog.finish_run(run_id, "success", rows_out=10)
        n += 1
    catalog.set_watermark(f"worker{index}", "done", {"n": n})
    catalog.close()


if __name__ == "__pg_catalog_worker__":  # run in a spawned process by the test below
    _worker(**WORKER_ARGS)  # type: ignore[name-defined]  # noqa: F821


def _ses(values: list[float]) -> float:
    """The blend of forecasts of one target applied in this order."""
    blended = values[0]
    for value in values[1:]:
        blended = ALPHA * value + (1 - ALPHA) * blended
    return blended


def test_four_processes_write_one_fresh_postgresql_catalog(pg_uri: str):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS, timeout=60)  # all go once every spawned interpreter has opened
    procs = [
        ctx.Process(
            target=runpy.run_path,
            args=(__file__,),
            kwargs={
                "run_name": "__pg_catalog_worker__",
                "init_globals": {
                    "WORKER_ARGS": {"uri": pg_uri, "index": i, "start": start, "seconds": WORK_SECONDS}
                },
            },
        )
        for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    for p in procs:
        if p.is_alive():  # pragma: no cover - a deadlock: fail, and leave nothing running
            p.kill()
    assert [p.exitcode for p in procs] == [0] * WORKERS
    with Catalog(pg_uri, migrate=False) as cat:
        store = PredictionStore(cat.engine, alpha=ALPHA)
        counts = [cat.get_watermark(f"worker{i}", "done")["n"] for i in range(WORKERS)]
        assert min(counts) > 0
        for i, n in enumerate(counts):
            assert cat.get_watermark(f"worker{i}", "k") == {"n": n - 1}
            runs = cat.runs(name=f"worker{i}", limit=100_000)
            assert len(runs) == n and {r.status for r in runs} == {"success"}
            own = store.raw(f"own/x/w{i}")
            assert own.num_rows == 5 * n
            # own series: blended in origin order, each target's value exactly the SES fold
            by_target: dict[int, list[float]] = {}
            for target, value in zip(
                own["target_ts"].cast("int64").to_pylist(), own["value"].to_pylist(), strict=True
            ):  # raw() is ordered by target, then origin
                by_target.setdefault(target, []).append(value)
            blended = store.blended(f"own/x/w{i}")
            got = dict(
                zip(blended["target_ts"].cast("int64").to_pylist(), blended["value"].to_pylist(), strict=True)
            )
            assert got.keys() == by_target.keys()
            for target, values in by_target.items():
                assert got[target] == pytest.approx(_ses(values)), target
            updates = dict(
                zip(
                    blended["target_ts"].cast("int64").to_pylist(),
                    blended["updates"].to_pylist(),
                    strict=True,
                )
            )
            assert updates == {t: len(v) for t, v in by_target.items()}
        shared = store.raw("shared/x/y")
        assert shared.num_rows == 5 * sum(counts)
        per_target = shared.group_by("target_ts").aggregate([("value", "count")])
        expected = dict(
            zip(
                per_target["target_ts"].cast("int64").to_pylist(),
                per_target["value_count"].to_pylist(),
                strict=True,
            )
        )
        assert max(expected.values()) > 1, "the workers' forecasts must meet in the same targets"
        blended = store.blended("shared/x/y")
        targets = blended["target_ts"].cast("int64").to_numpy()
        assert dict(zip(targets.tolist(), blended["updates"].to_pylist(), strict=True)) == expected
        np.testing.assert_allclose(blended["value"].to_numpy(), targets / MIN)
