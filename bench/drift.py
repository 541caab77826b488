"""Drift detectors' calibration: false alarms on stationary real series, delay on injected shifts.

The data are real series packaged with the installed libraries (nothing is downloaded):
pmdarima's ``taylor`` (half-hourly electricity demand, weekly season), ``msft`` (daily prices), ``sunspots``
(monthly), statsmodels' ``co2`` (weekly), River's ``WaterFlow`` and ``TrumpApproval``. Each is
made stationary (differences, seasonal where it has a season) and cut into stretches of
:data:`STRETCH` points; the stretches an augmented Dickey-Fuller test finds stationary
(p < 0.01) are kept.

* **False alarms per 10,000 points**: every detector over every kept stretch as it is.
* **Detection delay**: in each stretch, from point :data:`SHIFT_AT` on, a level shift (+2 sd),
  a variance change (deviations × 3) or a seasonal pattern appearing (a sine of period 24 and
  amplitude 2 sd); the delay is the points from the change to the first alarm after it
  (missed when none comes before the stretch ends).

Ours are sparkhu's kinds (:data:`sparkhu.online.drift.KINDS`): ``level`` on the values and
``variance`` on |Δvalue|, a change found by either; River's ``PageHinkley``, ``ADWIN`` and
``KSWIN`` (default settings) get the same two streams (values standardised on the first
``min_points``, as ours are). **Throughput**: 1,000 series of real values fed one point per
series per batch (the online predictor's shape), ours (vectorised across series) against River's
``PageHinkley`` (a call per point), A/B/B/A.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import Result, interleaved
from sparkhu.online.drift import KINDS, PageHinkleyBank, RiverBank

STRETCH = 1000
SHIFT_AT = 500
SEASON_PERIOD = 24


def _series() -> dict[str, np.ndarray]:
    """Real series, made stationary (name → values)."""
    import pmdarima.datasets as pm
    import statsmodels.api as sm
    from river import datasets as rd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        taylor = pm.load_taylor().astype(float)
        msft = pm.load_msft()["Close"].to_numpy(dtype=float)
        sunspots = pm.load_sunspots().astype(float)
        co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().bfill().to_numpy(dtype=float)
        water = np.array([y for _, y in rd.WaterFlow()], dtype=float)
        trump = np.array([y for _, y in rd.TrumpApproval()], dtype=float)
    return {
        "taylor Δ336": taylor[336:] - taylor[:-336],  # its weekly season: weekdays and weekends differ
        "msft Δlog": np.diff(np.log(msft)),
        "sunspots Δ": np.diff(sunspots),
        "co2 ΔΔ52": np.diff(co2[52:] - co2[:-52]),
        "water flow Δ": np.diff(water),
        "trump approval Δ": np.diff(trump),
    }


def stretches() -> list[tuple[str, np.ndarray]]:
    """The stationary stretches (name, values) of the packaged series."""
    from statsmodels.tsa.stattools import adfuller

    kept = []
    for name, values in _series().items():
        for at in range(0, values.size - STRETCH + 1, STRETCH):
            part = values[at : at + STRETCH]
            if np.std(part) > 0 and adfuller(part, autolag="AIC", result_object=False)[1] < 0.01:
                kept.append((f"{name} @{at}", part))
    return kept


def inject(values: np.ndarray, kind: str) -> np.ndarray:
    """``values`` with a change of ``kind`` from :data:`SHIFT_AT` on."""
    out = values.copy()
    sd, mean = np.std(values[:SHIFT_AT]), np.mean(values[:SHIFT_AT])
    tail = slice(SHIFT_AT, None)
    if kind == "level":
        out[tail] += 2.0 * sd
    elif kind == "variance":
        out[tail] = mean + 3.0 * (values[tail] - mean)
    else:
        t = np.arange(values.size - SHIFT_AT)
        out[tail] += 2.0 * sd * np.sin(2 * np.pi * t / SEASON_PERIOD)
    return out


Detector = Callable[[list[np.ndarray]], list[np.ndarray]]
"""Streams (one per series) → each stream's alarm indices."""


def _ours(streams: list[np.ndarray]) -> list[np.ndarray]:
    """sparkhu's level and variance kinds over all streams at once; alarms of either."""
    return _either(streams, lambda kind: KINDS[kind].bank())


def _river(make: Callable[[], Any], name: str) -> Detector:
    def detect(streams: list[np.ndarray]) -> list[np.ndarray]:
        return _either(streams, lambda _: RiverBank(make, name), standardise=True)

    return detect


def _either(
    streams: list[np.ndarray],
    bank_of: Callable[[str], PageHinkleyBank | RiverBank],
    standardise: bool = False,
) -> list[np.ndarray]:
    """Feed each stream's values to a ``level`` bank and |Δ| to a ``variance`` bank, slot per stream."""
    alarms: list[set[int]] = [set() for _ in streams]
    minimum = KINDS["level"].min_points
    for kind in ("level", "variance"):
        bank = bank_of(kind)
        data = [s if kind == "level" else np.abs(np.diff(s, prepend=s[0])) for s in streams]
        if standardise:  # River's thresholds are in the values' units: ours scale themselves
            data = [(d - d[:minimum].mean()) / (d[:minimum].std() or 1.0) for d in data]
        keys = np.concatenate([np.full(d.size, i) for i, d in enumerate(data)])
        index = np.concatenate([np.arange(d.size) for d in data])
        # time-major, as the predictor feeds them: one point of every series per step
        order = np.lexsort((keys, index))
        hit, _ = bank.update(bank.slots([str(k) for k in keys[order]]), np.concatenate(data)[order])
        for stream, at in zip(keys[order][hit].tolist(), index[order][hit].tolist(), strict=True):
            alarms[stream].add(at)
    return [np.array(sorted(a), dtype=np.int64) for a in alarms]


def detectors() -> dict[str, Detector]:
    from river import drift

    return {
        "sparkhu page_hinkley": _ours,
        "river PageHinkley": _river(drift.PageHinkley, "PageHinkley"),
        "river ADWIN": _river(drift.ADWIN, "ADWIN"),
        "river KSWIN": _river(lambda: drift.KSWIN(seed=0), "KSWIN"),
    }


def calibrate(kept: list[tuple[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Per detector: false alarms per 10,000 points, and per change kind the median delay and misses."""
    streams = [v for _, v in kept]
    points = sum(v.size for v in streams)
    out: dict[str, dict[str, Any]] = {}
    for name, detect in detectors().items():
        found = detect(streams)
        row: dict[str, Any] = {"false alarms / 10k": 1e4 * sum(a.size for a in found) / points}
        for kind in ("level", "variance", "season"):
            alarms = detect([inject(v, kind) for v in streams])
            delays = []
            for a in alarms:
                after = a[a >= SHIFT_AT]
                delays.append(float(after[0] - SHIFT_AT) if after.size else np.nan)
            d = np.array(delays)
            row[kind] = (float(np.nanmedian(d)) if np.isfinite(d).any() else np.nan, int(np.isnan(d).sum()))
        out[name] = row
    return out


def run(scale: float) -> list[Result]:
    """The calibration table, and the throughput against River's PageHinkley."""
    kept = stretches()
    points = sum(v.size for _, v in kept)
    table = calibrate(kept)
    results: list[Result] = []
    for name, row in table.items():
        ours = name.startswith("sparkhu")
        results.append(
            Result(
                "drift",
                f"{name}: false alarms / 10k points",
                row["false alarms / 10k"],
                "alarms",
                "<= 5" if ours else "",
                (row["false alarms / 10k"] <= 5.0) if ours else None,
                f"{len(kept)} stationary stretches, {points:,} points",
            )
        )
        for kind in ("level", "variance", "season"):
            delay, missed = row[kind]
            results.append(
                Result(
                    "drift",
                    f"{name}: {kind} change, median delay",
                    delay,
                    "points",
                    "",
                    None,
                    f"{missed} of {len(kept)} missed",
                )
            )
    n_series = max(100, round(1000 * scale))
    values = np.concatenate([v for _, v in kept])
    per_series = max(50, min(200, values.size // n_series))
    matrix = np.resize(values, (n_series, per_series))
    keys = [f"s{i}" for i in range(n_series)]

    def ours_run() -> None:
        bank = KINDS["level"].bank()
        slots = bank.slots(keys)
        for step in range(per_series):
            bank.update(slots, matrix[:, step])

    def river_run() -> None:
        from river import drift

        bank = RiverBank(drift.PageHinkley, "PageHinkley")
        slots = bank.slots(keys)
        for step in range(per_series):
            bank.update(slots, matrix[:, step])

    ours_s, peer_s = interleaved(ours_run, river_run, rounds=2)
    total = n_series * per_series
    results.append(
        Result(
            "drift",
            f"level detector, {n_series:,} series × one point per batch",
            total / ours_s,
            "points/s",
            "",
            None,
            f"{per_series} batches; River PageHinkley {total / peer_s:,.0f} points/s",
            peer="river PageHinkley",
            ratio=peer_s / ours_s,
        )
    )
    return results
