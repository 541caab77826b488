"""Statistical portfolio: series/s for fit + back-test + champion selection on hourly series.

Synthetic hourly series of 720 points (a daily and a weekly cycle, a slow random-walk level,
noise; each with its own level and scale). Per series: :func:`select_champion` back-tests
the default portfolio for seasons (24, 168) — seasonal naive, SES, AutoETS, AutoARIMA,
AutoTheta, MSTL, NLinear, DLinear — over 3 windows of horizon 24 (re-fitted at every
window), then fits the champion on the whole history and forecasts 24 steps. Series are
spread over one worker process per core (``spawn``; each worker compiles numba once, which
is included in the wall time).

The issue's size is 1,000 series; a full run takes tens of minutes on 2 cores, so at
``scale=1`` the rate is measured on a sample of 100 of them (the work per series is
independent, so the rate carries over) and the projected time for 1,000 is reported.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from bench import Result

POINTS = 720
HORIZON = 24
SEASONS = (24, 168)
FULL_SIZE = 1000
SAMPLE = 100


def make_series(index: int, points: int = POINTS) -> np.ndarray:
    """One synthetic hourly series, reproducible from its index."""
    rng = np.random.default_rng(index)
    t = np.arange(points)
    level = rng.uniform(5, 500)
    scale = level * rng.uniform(0.05, 0.3)
    daily = np.sin(2 * np.pi * t / 24 + rng.uniform(0, 2 * np.pi))
    weekly = 0.4 * np.sin(2 * np.pi * t / 168 + rng.uniform(0, 2 * np.pi))
    walk = np.cumsum(rng.normal(0, 0.02, points))
    return level + scale * (daily + weekly + walk + rng.normal(0, 0.3, points))


def fit_series(indices: list[int]) -> list[dict[str, float | str]]:
    """Worker: select and fit the champion for each series; per-model back-test seconds."""
    from sparkhu.forecast.selection import default_portfolio, select_champion

    rows: list[dict[str, float | str]] = []
    for index in indices:
        y = make_series(index)
        start = time.perf_counter()
        selection = select_champion(
            y,
            default_portfolio(SEASONS, horizon=HORIZON),
            horizon=HORIZON,
            windows=3,
            season_length=SEASONS[0],
        )
        fit_start = time.perf_counter()
        selection.champion_model().fit(y).forecast(HORIZON)
        row: dict[str, float | str] = {
            "champion": selection.champion,
            "seconds": time.perf_counter() - start,
            "final_fit": time.perf_counter() - fit_start,
        }
        row.update({f"model:{label}": r.seconds for label, r in selection.results.items()})
        rows.append(row)
    return rows


def run(scale: float) -> list[Result]:
    n = max(4, round(SAMPLE * scale))
    workers = os.cpu_count() or 1
    chunks = [list(range(i, n, workers * 4)) for i in range(workers * 4)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        rows = [row for part in pool.map(fit_series, [c for c in chunks if c]) for row in part]
    wall = time.perf_counter() - start
    rate = n / wall
    models = sorted({k for row in rows for k in row if k.startswith("model:")})
    per_model = {m[6:]: float(np.mean([row[m] for row in rows if m in row])) for m in models}
    champions: dict[str, int] = {}
    for row in rows:
        champions[str(row["champion"])] = champions.get(str(row["champion"]), 0) + 1
    detail = (
        f"{n} of {FULL_SIZE} series x {POINTS} h, {workers} workers, 3 windows x h={HORIZON}; "
        f"1,000 projected {FULL_SIZE / rate / 60:.1f} min; champions "
        + ", ".join(f"{k} {v}" for k, v in sorted(champions.items(), key=lambda kv: -kv[1]))
    )
    results = [Result("portfolio", "fit+back-test+select", rate, "series/s", "(none set)", None, detail)]
    for model, seconds in sorted(per_model.items(), key=lambda kv: -kv[1]):
        results.append(
            Result(
                "portfolio",
                f"back-test {model}",
                seconds * 1000,
                "ms/series",
                detail="3 fits + forecasts, 1 core",
            )
        )
    final = float(np.mean([row["final_fit"] for row in rows])) * 1000
    results.append(
        Result("portfolio", "champion final fit", final, "ms/series", detail="whole history, 1 core")
    )
    return results
