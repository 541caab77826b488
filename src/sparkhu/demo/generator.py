"""AMPds2-like minutely household power, with the defects a real feed has and their ground truth.

:func:`generate` draws, for ``meters`` sub-meters named as in AMPds2 (``FGE`` fridge, ``CDE``
dryer, ``DWE`` dishwasher, ``HPE`` heat pump...), a minutely real-power signal in W with daily
and weekly cycles, appliance runs and noise, all vectorised with numpy from one ``seed``. The
whole-house meter ``WHE`` is the exact sum of the clean sub-meters (values are whole watts,
as in AMPds2, so the sum is exact in float64).

Defects are then applied, and recorded one row per affected series in ``defects``:

* on one sub-meter each (``WHE`` keeps the clean sum): ``level_shift`` (+offset W from
  ``start_ts`` to the end of the data, applied first), ``flatline`` (value stuck at the
  value of ``start_ts`` up to ``end_ts``), ``spike`` (one minute raised by thousands of W),
  ``gap`` (minutes ``start_ts``..``end_ts`` missing: an empty field in the wide CSV, no point
  in ``points``). These four are placed in disjoint time slots, so they never overlap.
* on whole lines (a property of the logger, so they hit every column, ``WHE`` included, and
  are recorded for every series): ``duplicate`` (the line is written twice, identically) and
  ``jitter`` (the line's ``UNIX_TS`` is off by a few seconds; ``start_ts`` = ``end_ts`` = the
  true minute, ``detail`` the offset). Duplicated and jittered lines are distinct lines.

``start_ts``/``end_ts`` are the first and last affected minute (inclusive). Beyond the 22
AMPds2 sub-meters, extra generic plug loads are named ``X23E``, ``X24E``...

>>> data = generate(days=1, meters=10, seed=7)
>>> list(data.wide.columns[:3]), len(data.meters)
(['UNIX_TS', 'WHE', 'B1E'], 10)
>>> bool((data.clean["WHE"] == data.clean[data.meters].sum(axis=1)).all())
True
>>> sorted(set(data.defects["kind"].to_pylist())) == sorted(DEFECT_KINDS)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sparkhu.errors import InputError
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE, TS_TYPE

AMPDS2_COLUMNS = (
    "WHE", "RSE", "GRE", "MHE", "B1E", "BME", "CWE", "DWE", "EQE", "FRE", "HPE", "OFE",
    "UTE", "WOE", "B2E", "CDE", "DNE", "EBE", "FGE", "HTE", "OUE", "TVE", "UNE",
)  # fmt: skip
"""The meter columns of AMPds2's ``Electricity_P.csv``, in its header order."""
WHOLE_HOUSE = "WHE"
AMPDS2_START = datetime(2012, 4, 1, 7, 0, tzinfo=UTC)
SERIES_PREFIX = "ampds2/electricity/"
FIELD_SUFFIX = ".P"
DEFECT_KINDS = ("gap", "duplicate", "spike", "flatline", "level_shift", "jitter")
DEFECT_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("start_ts", TS_TYPE),
        pa.field("end_ts", TS_TYPE),
        pa.field("detail", pa.string()),
    ]
)
MAX_METERS = 64

# sub-meters in the order they are picked: the ones with telling appliance behaviour first
_PRIORITY = (
    "FGE", "CDE", "DWE", "HPE", "FRE", "CWE", "WOE", "HTE", "TVE", "B1E", "OFE",
    "MHE", "RSE", "EQE", "B2E", "GRE", "BME", "UTE", "DNE", "EBE", "OUE", "UNE",
)  # fmt: skip
_LOCAL_OFFSET_MIN = -7 * 60  # AMPds2 is a Vancouver house: local day profiles at UTC-7
# occupancy-like meters: (standby W, amplitude W, profile)
_OCCUPANCY: dict[str, tuple[float, float, str]] = {
    "RSE": (180, 600, "home"), "MHE": (150, 500, "home"), "B1E": (15, 160, "evening"),
    "B2E": (10, 120, "evening"), "BME": (25, 90, "home"), "TVE": (8, 180, "evening"),
    "OFE": (20, 140, "office"), "DNE": (5, 60, "home"), "UNE": (60, 120, "home"),
    "EQE": (40, 0, "flat"), "UTE": (18, 10, "home"),
}  # fmt: skip
# appliance runs: (standby W, run W, runs/day, mean local hour, sd hours, min, max minutes, cycling)
_EVENTS = {
    "CDE": (6, 4300, 0.45, 14.0, 3.0, 45, 75, True), "CWE": (7, 450, 0.5, 10.5, 2.5, 35, 55, False),
    "DWE": (5, 1100, 0.8, 20.5, 1.0, 90, 110, True), "WOE": (8, 2400, 0.5, 17.5, 0.7, 35, 80, True),
    "HTE": (6, 3000, 5.0, 13.0, 4.0, 2, 10, False), "EBE": (9, 300, 0.2, 15.0, 3.0, 30, 180, False),
    "GRE": (12, 600, 0.3, 12.0, 3.0, 20, 90, False), "OUE": (5, 1000, 0.1, 14.0, 2.0, 30, 120, False),
}  # fmt: skip


@dataclass
class DemoData:
    """Generated data: the defective wide table, its long form, the clean truth and the defects."""

    wide: pd.DataFrame
    """AMPds2 layout, defects applied: ``UNIX_TS`` (int s) + ``WHE`` + sub-meters (float W, NaN = gap)."""
    clean: pd.DataFrame
    """The same columns before any defect: one line per minute, ``WHE`` = sum of the sub-meters."""
    points: pa.Table
    """``wide`` as points (:data:`~sparkhu.series.POINT_SCHEMA`), gaps absent, duplicates kept."""
    defects: pa.Table
    """Ground truth, :data:`DEFECT_SCHEMA`: series_id, kind, start_ts, end_ts, detail."""
    meters: list[str]
    """The sub-meter columns, in AMPds2 header order."""
    seed: int

    def write_csv(self, path: str | Path, *, until_unix_s: int | None = None) -> Path:
        """Write ``wide`` as an AMPds2 ``Electricity_P.csv`` (lines with ``UNIX_TS < until_unix_s``).

        Whole watts; a gap is an empty field; a duplicated line appears twice.
        """
        path = Path(path)
        wide = self.wide if until_unix_s is None else self.wide[self.wide["UNIX_TS"] < until_unix_s]
        columns = {"UNIX_TS": pa.array(wide["UNIX_TS"].to_numpy(), pa.int64())}
        for name in wide.columns[1:]:
            values = wide[name].to_numpy()
            missing = np.isnan(values)
            columns[name] = pa.array(np.where(missing, 0, values).astype("int64"), mask=missing)
        with path.open("wb") as out:
            out.write((",".join(columns) + "\n").encode())
            pa_csv.write_csv(pa.table(columns), out, pa_csv.WriteOptions(include_header=False))
        return path

    def write_parquet(self, path: str | Path) -> Path:
        """Write ``wide`` as one Parquet file in the same wide layout (nulls for gaps)."""
        path = Path(path)
        pq.write_table(pa.Table.from_pandas(self.wide, preserve_index=False), path)
        return path


def meter_names(meters: int) -> list[str]:
    """The ``meters`` sub-meters :func:`generate` draws, in AMPds2 header order (extras last)."""
    if not 10 <= meters <= MAX_METERS:
        raise InputError(f"meters={meters}: expected 10 to {MAX_METERS} sub-meters", field="meters")
    chosen = set(_PRIORITY[:meters])
    names = [name for name in AMPDS2_COLUMNS[1:] if name in chosen]
    return names + [f"X{i:02d}E" for i in range(len(_PRIORITY) + 1, meters + 1)]


def series_id(meter: str) -> str:
    """The series id of a meter column: ``ampds2/electricity/<METER>.P``."""
    return f"{SERIES_PREFIX}{meter}{FIELD_SUFFIX}"


def generate(
    days: float,
    meters: int = 11,
    seed: int = 7,
    *,
    start: datetime | int = AMPDS2_START,
    defects: bool = True,
) -> DemoData:
    """Draw ``days`` of minutely power for ``meters`` sub-meters (+ ``WHE``) from ``seed``.

    ``start`` (an aware datetime or Unix seconds) is floored to the minute. The same
    arguments always give the same data; a meter's clean signal does not depend on which
    other meters were picked. ``defects=False`` leaves the data clean (``wide`` = ``clean``).
    """
    if not days > 0 or not math.isfinite(days):
        raise InputError(f"days={days}: expected a positive number of days", field="days")
    names = meter_names(meters)
    if isinstance(start, datetime):
        if start.tzinfo is None:
            raise InputError(f"start={start}: expected a timezone-aware datetime (UTC)", field="start")
        start_s = int(start.timestamp())
    else:
        start_s = int(start)
    start_s -= start_s % 60
    n = max(2, round(days * 1440))
    minute = start_s // 60 + np.arange(n, dtype=np.int64)
    subs = np.vstack([_meter(name, minute, seed) for name in names])
    whole = subs.sum(axis=0)
    ts_s = minute * 60
    clean = pd.DataFrame({"UNIX_TS": ts_s, WHOLE_HOUSE: whole, **dict(zip(names, subs, strict=True))})
    if not defects:
        wide, table = clean, DEFECT_SCHEMA.empty_table()
    else:
        wide, table = _apply_defects(subs, whole, ts_s, names, np.random.default_rng([seed, 1_000_003]))
    return DemoData(wide, clean, _to_points(wide), table, names, seed)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, *name.encode()])


def _meter(name: str, minute: np.ndarray, seed: int) -> np.ndarray:
    """One sub-meter's clean signal in whole W (≥ 0); HPE and FRE share one weather."""
    rng = _rng(seed, name)
    local = minute + _LOCAL_OFFSET_MIN
    hour = (local % 1440) / 60.0
    day = local // 1440
    weekend = ((day + 3) % 7) >= 5  # 1970-01-01 was a Thursday
    n = len(minute)
    if name == "FGE":
        power = _fridge(minute, hour, rng)
    elif name in ("HPE", "FRE"):
        power = _heat_pump(minute, hour, day, _rng(seed, "weather"), fan=name == "FRE")
    elif name in _EVENTS:
        power = _appliance(minute, local, _EVENTS[name], rng)
    else:
        if name in _OCCUPANCY:
            base, amp, profile = _OCCUPANCY[name]
        else:  # an extra plug load
            base, amp, profile = rng.uniform(5, 60), rng.uniform(20, 300), "home"
        day_factor = rng.lognormal(0.0, 0.25, size=int(day[-1] - day[0]) + 1)[day - day[0]]
        power = base + amp * _profile(profile, hour, weekend) * day_factor
    noise = rng.normal(0.0, 1.5 + 0.01 * np.abs(power), size=n)
    return np.rint(np.clip(power + noise, 0.0, None))


def _profile(kind: str, hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Occupancy-like daily shapes in [0, ~1.5], weekends differing."""
    morning = np.exp(-(((hour - 7.5) / 1.2) ** 2))
    evening = np.exp(-(((hour - 20.0) / 2.0) ** 2))
    midday = np.exp(-(((hour - 13.0) / 3.0) ** 2))
    if kind == "flat":
        return np.zeros_like(hour)
    if kind == "evening":
        return 1.2 * evening + 0.3 * morning + 0.5 * midday * weekend
    if kind == "office":
        return ((hour >= 9) & (hour < 17) & ~weekend) * (0.8 + 0.2 * midday) + 0.1 * evening
    return 0.4 * morning + evening + 0.6 * midday * weekend + 0.1


def _fridge(minute: np.ndarray, hour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Compressor cycles of 40 to 60 min at 35 to 50 % duty, inrush on the first minute, a nightly defrost."""
    n = len(minute)
    lengths = rng.integers(40, 61, size=n // 40 + 2)
    duty = rng.uniform(0.35, 0.5, size=len(lengths))
    ends = np.cumsum(lengths) - int(rng.integers(0, 40))
    cycle = np.searchsorted(ends, np.arange(n), side="right")
    pos = np.arange(n) - (ends[cycle] - lengths[cycle])
    on = pos < duty[cycle] * lengths[cycle]
    defrost = (hour >= 2.0) & (hour < 2.35)
    return 6.0 + on * (118.0 + 180.0 * (pos == 0)) + defrost * 350.0


def _heat_pump(
    minute: np.ndarray, hour: np.ndarray, day: np.ndarray, weather: np.random.Generator, *, fan: bool
) -> np.ndarray:
    """Demand from a temperature-like daily profile, served by 20-minute PWM cycles."""
    days = int(day[-1] - day[0]) + 2
    daily = np.cumsum(weather.normal(0.0, 1.2, size=days))  # day-to-day weather drift
    daily = daily - np.linspace(0.0, daily[-1], days)
    frac = (minute % 1440) / 1440.0
    drift = np.interp(day - day[0] + frac, np.arange(days), daily)
    temp = 8.0 + 5.0 * np.sin(2 * np.pi * (hour - 9.0) / 24.0) + drift
    demand = np.clip((17.0 - temp) / 14.0, 0.0, 1.0) * np.where((hour >= 23) | (hour < 6), 0.6, 1.0)
    on = (minute % 20) / 20.0 < demand
    return 35.0 + on * 90.0 if fan else 12.0 + on * 1850.0


def _appliance(
    minute: np.ndarray,
    local: np.ndarray,
    spec: tuple[float, float, float, float, float, int, int, bool],
    rng: np.random.Generator,
) -> np.ndarray:
    """Runs drawn per local day (Poisson count, normal start hour), painted by a difference array."""
    standby, power, rate, mean_h, sd_h, shortest, longest, cycling = spec
    n = len(minute)
    first_day = int(local[0] // 1440)
    days = int(local[-1] // 1440) - first_day + 1
    counts = rng.poisson(rate, size=days)
    run_day = np.repeat(np.arange(days), counts)
    start_min = np.clip(rng.normal(mean_h, sd_h, size=len(run_day)), 0, 23.9) * 60
    starts = ((first_day + run_day) * 1440 + start_min.astype(np.int64) - int(local[0])).astype(np.int64)
    lengths = rng.integers(shortest, longest + 1, size=len(starts))
    keep = (starts >= 0) & (starts < n)
    starts, lengths = starts[keep], lengths[keep]
    diff = np.zeros(n + 1)
    np.add.at(diff, starts, 1.0)
    np.add.at(diff, np.minimum(starts + lengths, n), -1.0)
    active = np.cumsum(diff[:n]) > 0.5
    if cycling:  # thermostat of a heating element: on 5 of every 7 minutes, a motor under it
        heat = ((np.arange(n) + int(rng.integers(7))) % 7) < 5
        return standby + active * (0.06 * power + 0.94 * power * heat)
    return standby + active * power


def _apply_defects(
    subs: np.ndarray, whole: np.ndarray, ts_s: np.ndarray, names: list[str], rng: np.random.Generator
) -> tuple[pd.DataFrame, pa.Table]:
    n, k = subs.shape[1], len(names)
    days = max(1, n // 1440)
    out = subs.copy()
    records: list[tuple[str, str, int, int, str]] = []
    kinds = (
        ["level_shift"] * max(1, days // 14) + ["flatline"] * max(1, days // 4)
        + ["spike"] * max(3, days) + ["gap"] * max(2, days // 2)
    )  # fmt: skip
    slot = n // len(kinds)
    if slot < 4:
        raise InputError(f"{n} minutes are too few to place {len(kinds)} defects; generate more days")
    order = rng.permutation(len(kinds))
    for kind, slot_index in zip(kinds, order, strict=True):
        j = int(rng.integers(k))
        longest = max(1, slot // 2)
        a = slot_index * slot + int(rng.integers(0, slot - longest))
        if kind == "level_shift":
            offset = float(rng.integers(100, 301))
            out[j, a:] += offset
            b, detail = n - 1, f"+{offset:.0f} W from here to the end"
        elif kind == "flatline":
            b = a + min(longest, int(rng.integers(30, 241))) - 1
            out[j, a : b + 1] = out[j, a]
            detail = f"stuck at {out[j, a]:.0f} W for {b - a + 1} min"
        elif kind == "spike":
            b = a
            jump = float(rng.integers(2500, 6001))
            out[j, a] += jump
            detail = f"+{jump:.0f} W → {out[j, a]:.0f} W"
        else:
            short = rng.random() < 0.5
            b = a + min(longest, int(rng.integers(1, 6) if short else rng.integers(30, 121))) - 1
            out[j, a : b + 1] = np.nan
            detail = f"{b - a + 1} missing minute(s)"
        records.append((series_id(names[j]), kind, int(ts_s[a]), int(ts_s[b]), detail))

    # whole-line defects on distinct lines
    n_dup, n_jit = max(2, days // 2), max(3, days)
    lines = rng.choice(n, size=min(n, n_dup + n_jit), replace=False)
    dup_lines, jit_lines = np.sort(lines[:n_dup]), np.sort(lines[n_dup:])
    jitter = np.zeros(n, dtype=np.int64)
    shifts = rng.integers(1, 6, size=len(jit_lines)) * rng.choice([-1, 1], size=len(jit_lines))
    jitter[jit_lines] = shifts
    all_ids = [series_id(WHOLE_HOUSE)] + [series_id(m) for m in names]
    for line in dup_lines:
        at = int(ts_s[line])
        records += [(sid, "duplicate", at, at, "line written twice") for sid in all_ids]
    for line, shift in zip(jit_lines, shifts, strict=True):
        detail = f"clock {int(shift):+d} s (UNIX_TS {int(ts_s[line] + shift)})"
        records += [(sid, "jitter", int(ts_s[line]), int(ts_s[line]), detail) for sid in all_ids]

    rows = np.sort(np.concatenate([np.arange(n), dup_lines]))
    matrix = np.vstack([whole, out])[:, rows]
    wide = pd.DataFrame({"UNIX_TS": ts_s[rows] + jitter[rows]})
    for name, values in zip([WHOLE_HOUSE, *names], matrix, strict=True):
        wide[name] = values
    sids, kinds, starts_s, ends_s, details = (list(col) for col in zip(*records, strict=True))
    table = pa.table(
        {
            "series_id": pa.array(sids, pa.string()),
            "kind": pa.array(kinds, pa.string()),
            "start_ts": pa.array(np.asarray(starts_s, dtype=np.int64) * 1_000_000).cast(TS_TYPE),
            "end_ts": pa.array(np.asarray(ends_s, dtype=np.int64) * 1_000_000).cast(TS_TYPE),
            "detail": pa.array(details, pa.string()),
        },
        schema=DEFECT_SCHEMA,
    )
    return wide, table.sort_by([("start_ts", "ascending"), ("series_id", "ascending")])


def _to_points(wide: pd.DataFrame) -> pa.Table:
    """Unpivot the wide table to points, series by series in column order, NaN dropped."""
    columns = list(wide.columns[1:])
    matrix = wide[columns].to_numpy(dtype=np.float64).T
    rows = matrix.shape[1]
    ts_us = wide["UNIX_TS"].to_numpy(dtype=np.int64) * 1_000_000
    values = matrix.ravel()
    keep = ~np.isnan(values)
    codes = np.repeat(np.arange(len(columns), dtype=np.int32), rows)[keep]
    ids = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array([series_id(c) for c in columns]))
    ts = pa.array(np.tile(ts_us, len(columns))[keep]).cast(TS_TYPE)
    return pa.Table.from_arrays([ids.cast(SERIES_ID_TYPE), ts, pa.array(values[keep])], schema=POINT_SCHEMA)
