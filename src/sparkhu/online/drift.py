"""Drift detection per series, vectorised across series: the input's level and variance, the online errors.

A :class:`PageHinkleyBank` runs one Page-Hinkley test per *slot* (a series and what is watched)
with its state in numpy arrays, so a batch of points of many series is one array operation per
point of the longest series in it, never a Python call per point. Each slot learns a scale on
its first ``min_points`` values (their standard deviation ``sd``), then tests each
value's deviation from the running mean, in ``sd`` and clipped to ``±clip`` (a single spike, an
appliance switching on, moves the statistic by at most ``clip − delta``: it takes a run of them
to raise an alarm)::

    z = clip((x − mean) / sd, −clip, clip);   mean += z · sd / n      (a robust running mean)
    m_up += z − delta,   up   = m_up − min(m_up)          (the mean went up)
    m_dn += z + delta,   down = max(m_dn) − m_dn          (the mean went down)

An alarm (``up`` or ``down`` above ``threshold``, as ``mode`` says) is a drift event; the slot
then starts again (a new reference on the next ``min_points`` values). The thresholds of
:data:`KINDS` were chosen with ``bench/drift.py`` (false alarms per 10,000 points on stationary
stretches of real series, detection delay on injected shifts; see docs/autopilot.md).

:class:`DriftWatch` feeds a bank per kind from what the online predictor sees: ``level`` the
points' values, ``variance`` the absolute change from the previous point, ``error`` the
absolute one-step error of each model over the series' scale (MASE's, so the test does not
depend on the series' units; seasonality changes show here, through the errors of a seasonal
model). Its state pickles, so the scorer keeps it in the catalog with the checkpoint.

River's detectors (``ADWIN``, ``PageHinkley``, ``KSWIN``) are the peers: :class:`RiverBank` runs
one per slot with the same interface (a Python call per point), and ``bench/drift.py`` measures
both side by side.

>>> import numpy as np
>>> bank = PageHinkleyBank(threshold=20.0, min_points=30)
>>> rng = np.random.default_rng(1)
>>> x = np.r_[rng.normal(0, 1, 300), rng.normal(3, 1, 100)]  # a level shift of 3 sd at 300
>>> slots = bank.slots(["a/b/c"] * len(x))
>>> alarms, _ = bank.update(slots, x)
>>> int(np.flatnonzero(alarms)[0]) - 300 < 15, bool(alarms[:300].any())
(True, False)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sparkhu.errors import InputError
from sparkhu.series import is_series_id
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.engine import read_tx
from sparkhu.timeaxis import from_us, to_us

Mode = Literal["up", "down", "both"]
NOISE_BOUND = 4.0
"""A slot's scale is at most this many times its noise (the robust spread of its steps, / √2)."""
_FIELDS = ("filled", "sd", "k", "mean", "m_up", "min_up", "m_dn", "max_dn")


def ranks(keys: np.ndarray) -> np.ndarray:
    """Position of each element among the equal keys before it (0 for the first of each key).

    >>> ranks(np.array([3, 1, 3, 3, 1])).tolist()
    [0, 0, 1, 2, 1]
    """
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if keys.size else np.zeros(0, bool)
    first = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1
    out = np.empty(keys.size, dtype=np.int64)
    out[order] = np.arange(keys.size) - first[group]
    return out


class PageHinkleyBank:
    """Page-Hinkley tests for many slots at once; see the module docstring.

    ``delta``: the change of mean (in reference standard deviations) to ignore; ``threshold``:
    the statistic that raises an alarm; ``min_points``: values learning the reference after a
    start or an alarm; ``clip``: the bound of a standardised value; ``mode``: which direction
    alarms.
    """

    name = "page_hinkley"

    def __init__(
        self,
        *,
        delta: float = 0.1,
        threshold: float = 30.0,
        min_points: int = 30,
        clip: float = 4.0,
        mode: Mode = "both",
    ) -> None:
        if not delta >= 0:
            raise InputError(f"must be >= 0, got {delta!r}", field="delta")
        if not threshold > 0:
            raise InputError(f"must be > 0, got {threshold!r}", field="threshold")
        if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 2:
            raise InputError(f"must be an integer >= 2, got {min_points!r}", field="min_points")
        if not clip > 0:
            raise InputError(f"must be > 0, got {clip!r}", field="clip")
        if mode not in ("up", "down", "both"):
            raise InputError(f"must be up, down or both, got {mode!r}", field="mode")
        self.delta, self.threshold, self.min_points, self.clip, self.mode = (
            float(delta),
            float(threshold),
            min_points,
            float(clip),
            mode,
        )
        self.index: dict[str, int] = {}
        """slot key → row of the state arrays."""
        self.by_series: dict[str, list[str]] = {}
        """series id → its slot keys."""
        self.state = {name: np.zeros(0) for name in _FIELDS}
        self.buffer = np.zeros((0, min_points))
        """Per slot: the values its scale is learnt from."""

    def __len__(self) -> int:
        return len(self.index)

    def slots(self, keys: Iterable[str]) -> np.ndarray:
        """Rows of ``keys`` (new keys get fresh slots)."""
        keys = list(keys)
        for key in dict.fromkeys(keys):
            if key not in self.index:
                self.index[key] = len(self.index)
                self.by_series.setdefault(key_series(key), []).append(key)
        grow = len(self.index) - self.buffer.shape[0]
        if grow > 0:
            extra = max(grow, self.buffer.shape[0] // 2)
            for name, array in self.state.items():
                self.state[name] = np.r_[array, np.zeros(extra)]
            self.buffer = np.vstack([self.buffer, np.zeros((extra, self.min_points))])
        return np.fromiter((self.index[k] for k in keys), dtype=np.int64, count=len(keys))

    def copy(self) -> PageHinkleyBank:
        """An independent copy (the scorer computes a batch on a copy, kept once it is stored)."""
        twin = object.__new__(PageHinkleyBank)
        twin.__dict__.update(self.__dict__)
        twin.index = dict(self.index)
        twin.by_series = {sid: list(keys) for sid, keys in self.by_series.items()}
        twin.state = {name: array.copy() for name, array in self.state.items()}
        twin.buffer = self.buffer.copy()
        return twin

    def rows(self, slots: Sequence[int]) -> dict[str, np.ndarray]:
        """The state of ``slots`` (to save a series' part)."""
        at = np.asarray(slots, dtype=np.int64)
        return {name: array[at].copy() for name, array in self.state.items()} | {"buffer": self.buffer[at]}

    def load(self, keys: Sequence[str], rows: dict[str, np.ndarray]) -> None:
        """Restore the state of ``keys`` saved by :meth:`rows`."""
        at = self.slots(keys)
        for name in _FIELDS:
            self.state[name][at] = rows[name]
        self.buffer[at] = rows["buffer"]

    def update(self, slots: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed ``values[i]`` to slot ``slots[i]`` (in order per slot); per value: alarm?, statistic.

        A value that is not finite is skipped (no alarm, statistic NaN).
        """
        slots = np.asarray(slots, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        alarms = np.zeros(values.size, dtype=bool)
        stats = np.full(values.size, np.nan)
        ok = np.isfinite(values)
        order = np.flatnonzero(ok)
        if not order.size:
            return alarms, stats
        rank = ranks(slots[order])
        by_rank = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
        for k in range(len(bounds) - 1):
            rows = order[by_rank[bounds[k] : bounds[k + 1]]]
            alarms[rows], stats[rows] = self._step(slots[rows], values[rows])
        return alarms, stats

    def _step(self, s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One value for each of the distinct slots ``s``."""
        st, buf = self.state, self.buffer
        filled = st["filled"][s].astype(np.int64)
        learning = filled < self.min_points
        if learning.any():  # the scale's sample: the first min_points values, and again after an alarm
            ls = s[learning]
            buf[ls, filled[learning]] = x[learning]
            st["filled"][ls] += 1
            done = ls[filled[learning] + 1 == self.min_points]
            if done.size:
                sample = buf[done]
                center = np.median(sample, axis=1)
                steps = np.diff(sample, axis=1)
                noise = (
                    1.4826 * np.median(np.abs(steps - np.median(steps, axis=1)[:, None]), axis=1) / np.sqrt(2)
                )
                # the spread, unless a ramp or a step inside the sample inflates it past NOISE_BOUND × noise
                spread = np.minimum(np.std(sample, axis=1, ddof=1), NOISE_BOUND * noise)
                first = st["sd"][done] == 0
                st["sd"][done] = np.maximum(spread, np.maximum(1e-9, 1e-6 * np.abs(center)))
                st["mean"][done[first]] = center[first]
                st["k"][done[first]] = self.min_points
        stat = np.full(s.size, np.nan)
        alarm = np.zeros(s.size, dtype=bool)
        t = st["sd"][s] > 0
        t[learning] &= st["k"][s[learning]] > 0  # a first sample is not tested
        if not t.any():
            return alarm, stat
        ts, tx, sd = s[t], x[t], st["sd"][s[t]]
        k = st["k"][ts] + 1
        st["k"][ts] = k
        z = np.clip((tx - st["mean"][ts]) / sd, -self.clip, self.clip)  # off the running mean, clipped
        st["mean"][ts] += z * sd / k  # the running mean of the clipped values
        st["m_up"][ts] += z - self.delta
        st["min_up"][ts] = np.minimum(st["min_up"][ts], st["m_up"][ts])
        st["m_dn"][ts] += z + self.delta
        st["max_dn"][ts] = np.maximum(st["max_dn"][ts], st["m_dn"][ts])
        up = st["m_up"][ts] - st["min_up"][ts]
        down = st["max_dn"][ts] - st["m_dn"][ts]
        value = {"up": up, "down": down, "both": np.maximum(up, down)}[self.mode]
        hit = value > self.threshold
        stat[t], alarm[t] = value, hit
        if hit.any():  # start again from the new level; the scale is learnt again meanwhile
            hs = ts[hit]
            for name in ("m_up", "min_up", "m_dn", "max_dn", "filled"):
                st[name][hs] = 0.0
            st["mean"][hs], st["k"][hs] = tx[hit], 1
        return alarm, stat


class RiverBank:
    """One River detector per slot behind :class:`PageHinkleyBank`'s interface (the peer).

    ``factory`` makes a detector (``lambda: river.drift.ADWIN()``); ``name`` names it in events.
    Values are fed one call at a time, as River's API is.

    >>> from river.drift import PageHinkley
    >>> bank = RiverBank(lambda: PageHinkley(threshold=20.0), "river_page_hinkley")
    >>> alarms, _ = bank.update(bank.slots(["a/b/c"] * 400), np.r_[np.zeros(300), np.full(100, 5.0)])
    >>> bool(alarms[:300].any()), bool(alarms[300:].any())
    (False, True)
    """

    def __init__(self, factory: Callable[[], Any], name: str, threshold: float = float("nan")) -> None:
        self.factory, self.name, self.threshold = factory, name, threshold
        self.index: dict[str, int] = {}
        self.detectors: list[Any] = []

    def __len__(self) -> int:
        return len(self.index)

    def slots(self, keys: Iterable[str]) -> np.ndarray:
        """Rows of ``keys`` (new keys get fresh detectors)."""
        out = []
        for key in keys:
            at = self.index.get(key)
            if at is None:
                at = self.index[key] = len(self.detectors)
                self.detectors.append(self.factory())
            out.append(at)
        return np.asarray(out, dtype=np.int64)

    def copy(self) -> RiverBank:
        """An independent copy (the detectors deep-copied)."""
        twin = RiverBank(self.factory, self.name, self.threshold)
        twin.index = dict(self.index)
        twin.detectors = copy.deepcopy(self.detectors)
        return twin

    @property
    def by_series(self) -> dict[str, list[str]]:
        """series id → its slot keys."""
        out: dict[str, list[str]] = {}
        for key in self.index:
            out.setdefault(key_series(key), []).append(key)
        return out

    def rows(self, slots: Sequence[int]) -> dict[str, Any]:
        """The detectors of ``slots`` (they pickle)."""
        return {"detectors": [copy.deepcopy(self.detectors[s]) for s in slots]}

    def load(self, keys: Sequence[str], rows: dict[str, Any]) -> None:
        """Restore the detectors of ``keys`` saved by :meth:`rows`."""
        for slot, detector in zip(self.slots(keys).tolist(), rows["detectors"], strict=True):
            self.detectors[slot] = detector

    def update(self, slots: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed each value to its slot's detector; per value: alarm?, statistic (NaN: River keeps none)."""
        alarms = np.zeros(len(values), dtype=bool)
        detectors = self.detectors
        for i, (slot, value) in enumerate(zip(slots.tolist(), np.asarray(values).tolist(), strict=True)):
            if value == value:  # not NaN
                detector = detectors[slot]
                detector.update(value)
                alarms[i] = detector.drift_detected
        return alarms, np.full(len(values), np.nan)


RIVER_DETECTORS: dict[str, Callable[[], Any]] = {
    "adwin": lambda: _river().ADWIN(),
    "kswin": lambda: _river().KSWIN(seed=0),
    "river_page_hinkley": lambda: _river().PageHinkley(),
}
"""River's detectors a :class:`Kind` may use instead of ours (with their default settings)."""


def _river() -> Any:
    import river.drift  # imported when a River detector is asked for (it takes ~0.5 s)

    return river.drift


@dataclass(frozen=True)
class Kind:
    """What one kind of drift watches, and its test's settings (chosen with ``bench/drift.py``).

    ``detector``: ``page_hinkley`` (ours, vectorised) or one of :data:`RIVER_DETECTORS`.
    """

    name: str
    what: str
    delta: float
    threshold: float
    min_points: int
    clip: float
    mode: Mode
    detector: str = "page_hinkley"

    def bank(self) -> PageHinkleyBank | RiverBank:
        """A fresh bank with these settings."""
        if self.detector in RIVER_DETECTORS:
            return RiverBank(RIVER_DETECTORS[self.detector], self.detector)
        if self.detector != "page_hinkley":
            known = ", ".join(["page_hinkley", *RIVER_DETECTORS])
            raise InputError(f"unknown detector {self.detector!r}; expected one of {known}", field="detector")
        return PageHinkleyBank(
            delta=self.delta,
            threshold=self.threshold,
            min_points=self.min_points,
            clip=self.clip,
            mode=self.mode,
        )


KINDS: dict[str, Kind] = {
    "level": Kind("level", "the points' values", 1.0, 60.0, 60, 3.0, "both"),
    "variance": Kind("variance", "|value − previous value|", 0.5, 60.0, 60, 3.0, "both"),
    "error": Kind("error", "|one-step error| / the series' scale, per model", 0.5, 60.0, 60, 3.0, "up"),
}
"""The kinds of drift and their settings (see docs/autopilot.md, "Online evaluation and drift")."""


@dataclass(frozen=True)
class Detected:
    """Drift found in one batch, one array entry per event."""

    series_id: list[str]
    ts: np.ndarray
    kind: list[str]
    model: list[str]
    statistic: np.ndarray
    threshold: np.ndarray
    detector: list[str]

    @staticmethod
    def none() -> Detected:
        """No event."""
        return Detected([], np.zeros(0, np.int64), [], [], np.zeros(0), np.zeros(0), [])

    def __len__(self) -> int:
        return len(self.series_id)

    def rows(self, detected_at: int) -> list[dict[str, Any]]:
        """As rows of the catalog's ``drift_events`` table."""
        return [
            {
                "series_id": sid,
                "ts": int(ts),
                "kind": kind,
                "model": model,
                "detector": detector,
                "statistic": float(stat),
                "threshold": float(threshold),
                "detected_at": detected_at,
            }
            for sid, ts, kind, model, detector, stat, threshold in zip(
                self.series_id,
                self.ts.tolist(),
                self.kind,
                self.model,
                self.detector,
                self.statistic.tolist(),
                self.threshold.tolist(),
                strict=True,
            )
        ]


_SEP = "\x1f"


def slot_key(series_id: str, model: str = "") -> str:
    """A bank's key of a series (and model, for errors)."""
    return f"{series_id}{_SEP}{model}" if model else series_id


def key_series(key: str) -> str:
    """The series of a slot key."""
    return key.split(_SEP, 1)[0]


class DriftWatch:
    """One bank per kind of :data:`KINDS` over every series; see the module docstring.

    >>> watch = DriftWatch()
    >>> rng = np.random.default_rng(3)
    >>> values = np.r_[rng.normal(100, 5, 400), rng.normal(130, 5, 100)]  # +6 sd at point 400
    >>> ts = np.arange(values.size, dtype=np.int64) * 60_000_000
    >>> found = watch.observe_points(["a/b/c"] * values.size, ts, values, np.full(values.size, np.nan))
    >>> sorted(set(found.kind)), 400 < int(found.ts[0] // 60_000_000) < 450
    (['level'], True)
    """

    def __init__(self, kinds: dict[str, Kind] | None = None) -> None:
        self.kinds = dict(KINDS if kinds is None else kinds)
        self.banks: dict[str, PageHinkleyBank | RiverBank] = {n: k.bank() for n, k in self.kinds.items()}

    def copy(self) -> DriftWatch:
        """An independent copy."""
        twin = object.__new__(DriftWatch)
        twin.kinds = self.kinds
        twin.banks = {name: bank.copy() for name, bank in self.banks.items()}
        return twin

    def observe_points(
        self, series_ids: Sequence[str], ts: np.ndarray, values: np.ndarray, previous: np.ndarray
    ) -> Detected:
        """Feed new points (sorted by series then time) to ``level`` and ``variance``.

        ``previous``: each point's preceding value in its series (NaN: unknown, no variance value).
        """
        found = [
            self._feed("level", series_ids, [""] * len(series_ids), ts, values),
            self._feed("variance", series_ids, [""] * len(series_ids), ts, np.abs(values - previous)),
        ]
        return _concat(found)

    def observe_errors(
        self, series_ids: Sequence[str], models: Sequence[str], ts: np.ndarray, scaled_abs_errors: np.ndarray
    ) -> Detected:
        """Feed one-step errors (|error| / scale, sorted by series, model then time) to ``error``."""
        return self._feed("error", series_ids, models, ts, scaled_abs_errors)

    def series_state(self, series_id: str) -> dict[str, Any]:
        """Everything kept for one series (picklable), for :meth:`load_series`."""
        out: dict[str, Any] = {}
        for name, bank in self.banks.items():
            keys = list(bank.by_series.get(series_id, ()))
            out[name] = (keys, bank.rows([bank.index[k] for k in keys]))
        return out

    def load_series(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`series_state` gave."""
        for name, (keys, rows) in state.items():
            if name in self.banks and keys:
                self.banks[name].load(keys, rows)

    def _feed(
        self, name: str, series_ids: Sequence[str], models: Sequence[str], ts: np.ndarray, values: np.ndarray
    ) -> Detected:
        if name not in self.banks or not len(series_ids):
            return Detected.none()
        bank = self.banks[name]
        keys = [slot_key(s, m) for s, m in zip(series_ids, models, strict=True)]
        alarms, stats = bank.update(bank.slots(keys), values)
        hit: list[int] = np.flatnonzero(alarms).tolist()
        return Detected(
            [series_ids[i] for i in hit],
            np.asarray(ts)[hit],
            [name] * len(hit),
            [models[i] for i in hit],
            stats[hit],
            np.full(len(hit), bank.threshold),
            [bank.name] * len(hit),
        )


def _concat(parts: Sequence[Detected]) -> Detected:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Detected.none()
    return Detected(
        [s for p in parts for s in p.series_id],
        np.concatenate([p.ts for p in parts]),
        [k for p in parts for k in p.kind],
        [m for p in parts for m in p.model],
        np.concatenate([p.statistic for p in parts]),
        np.concatenate([p.threshold for p in parts]),
        [d for p in parts for d in p.detector],
    )


# ---------------------------------------------------------------------- the read side


@dataclass(frozen=True)
class DriftEvent:
    """One drift detected: on ``series_id`` at the point ``ts``; ``model`` is ``""`` for the input's kinds."""

    series_id: str
    ts: datetime
    kind: str
    model: str
    detector: str
    statistic: float
    threshold: float
    detected_at: datetime


MAX_EVENTS = 10_000


def drift_events(
    source: Any,
    series_id: str | None = None,
    since: datetime | None = None,
    *,
    kind: str | None = None,
    limit: int = 1000,
) -> list[DriftEvent]:
    """Drift events (of a series, at or after ``since``, of a ``kind``): the newest ``limit``, oldest first.

    ``source``: the catalog or its engine. What the controller reads to decide a retrain.

    >>> import tempfile
    >>> from sparkhu.storage.catalog import Catalog
    >>> with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/c.db") as catalog:
    ...     drift_events(catalog, "a/b/c")
    []
    """
    engine = getattr(source, "engine", source)
    if not isinstance(engine, Engine):
        raise InputError(f"needs the catalog or its engine, got {type(source).__name__}", field="source")
    if series_id is not None and not is_series_id(series_id):
        raise InputError(f"{series_id!r} is not a series id (source/measurement/field)", field="series_id")
    if since is not None and not isinstance(since, datetime):
        raise InputError(f"must be a datetime, got {since!r}", field="since")
    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}", field="kind")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS:
        raise InputError(f"must be an integer in 1..{MAX_EVENTS}, got {limit!r}", field="limit")
    t = schema.drift_events
    conds = []
    if series_id is not None:
        conds.append(t.c.series_id == series_id)
    if since is not None:
        conds.append(t.c.ts >= to_us(since))
    if kind is not None:
        conds.append(t.c.kind == kind)
    query = sa.select(t).where(*conds).order_by(t.c.ts.desc(), t.c.series_id, t.c.kind).limit(limit)
    with read_tx(engine, "reading drift events") as conn:
        rows = conn.execute(query).all()[::-1]
    return [
        DriftEvent(
            r.series_id,
            from_us(r.ts),
            r.kind,
            r.model,
            r.detector,
            float(r.statistic),
            float(r.threshold),
            from_us(r.detected_at),
        )
        for r in rows
    ]
