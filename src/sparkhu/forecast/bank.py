"""Many series' models in one place, the state of each vectorisable family kept in arrays.

A :class:`ModelBank` maps series ids to fitted :class:`~sparkhu.forecast.base.Forecaster`
models, like a dict, and adds two verbs over many series at once:
:meth:`ModelBank.update_many` (new points per series) and :meth:`ModelBank.forecast_many`
(``horizon`` steps and an interval per series). Models of a family with a vectorised kernel
(:data:`FAMILIES`: SES and seasonal naive) keep their learned state in one array per
attribute for every series of the family, so an update costs a few numpy operations per
*column* of new points across all those series, and a forecast one array expression — no
Python work per point. Any other model is updated and forecast one series at a time through
its own methods (same results, slower).

The bank still hands out the series' own model object: the object is brought up to date from
the arrays when it is read (``bank[sid]``, :meth:`~ModelBank.get`), so ``bank[sid] is model``
holds across updates. A model read from the bank and then changed directly (``update``,
``fit``) must be put back (``bank[sid] = model``) for the bank to see the change.

The recursions are exactly the models' own (SES: ``l = a·y + (1 − a)·l`` per observed point;
seasonal naive: a ring of the last two seasons), so forecasts after
:meth:`~ModelBank.update_many` equal those of ``model.update`` up to floating-point rounding
(``tests/forecast/test_bank.py`` checks it on a real series).

>>> from sparkhu.forecast.models import make_model
>>> bank = ModelBank()
>>> bank["a/b/x"] = make_model("ses", alpha=0.5).fit(np.array([1.0, 3.0]))
>>> bank["a/b/y"] = make_model("seasonal_naive", season_length=2).fit(np.array([1.0, 2.0]))
>>> bank.update_many(["a/b/x", "a/b/y"], [np.array([4.0]), np.array([5.0, 6.0])])  # failed series
set()
>>> out = bank.forecast_many(["a/b/x", "a/b/y"], 3)
>>> out.mean.tolist(), out.ok.tolist()
([[3.0, 3.0, 3.0], [5.0, 6.0, 5.0]], [True, True])
>>> bank["a/b/x"].level_, bank["a/b/x"].n_obs_
(3.0, 3)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping, Sequence
from functools import lru_cache
from statistics import NormalDist
from typing import Any, ClassVar, NamedTuple

import numpy as np

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models.naive import SeasonalNaive
from sparkhu.forecast.models.ses import SES

log = logging.getLogger(__name__)


class BankForecast(NamedTuple):
    """Forecasts of many series: rows in the order asked, ``ok`` False where a model failed."""

    mean: np.ndarray
    """(series, horizon) point forecasts (NaN where not ``ok``)."""
    lower: np.ndarray
    """(series, horizon) lower bounds (NaN where unknown, or without ``coverage``)."""
    upper: np.ndarray
    """(series, horizon) upper bounds."""
    ok: np.ndarray
    """(series,) bool: the model forecast."""


@lru_cache(maxsize=16)
def _z(coverage: float) -> float:
    """The standard normal quantile of a central ``coverage`` interval (cached: one per coverage)."""
    if not 0.0 < coverage < 1.0:
        raise ForecastError(f"coverage must be in (0, 1), got {coverage}")
    return NormalDist().inv_cdf(0.5 + coverage / 2.0)


def padded(values: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-series arrays as one (series, longest) matrix, NaN-padded, and their lengths.

    >>> m, n = padded([np.array([1.0]), np.array([2.0, 3.0])])
    >>> m.tolist(), n.tolist()
    ([[1.0, nan], [2.0, 3.0]], [1, 2])
    """
    counts = np.fromiter((v.size for v in values), dtype=np.int64, count=len(values))
    width = int(counts.max()) if counts.size else 0
    if width == 1 and counts.min() == 1:
        return np.concatenate(values).reshape(-1, 1).astype(np.float64, copy=False), counts
    out = np.full((len(values), width), np.nan)
    flat = np.concatenate(values) if values else np.empty(0)
    rows = np.repeat(np.arange(len(values)), counts)
    cols = np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out[rows, cols] = flat
    return out, counts


class Family:
    """The state of every model of one class and hyperparameters, one array per attribute.

    Subclasses name the model class (:attr:`kind`), the per-row state arrays and how to move a
    model's state in (:meth:`_load`) and out (:meth:`_store`), and implement the vectorised
    :meth:`update` and :meth:`forecast`.
    """

    kind: ClassVar[type[Forecaster]]

    def __init__(self, template: Forecaster) -> None:
        self.params = template.params
        self.size = 0
        self.models: list[Forecaster] = []
        self.synced = np.zeros(0, dtype=bool)
        self.n_obs = np.zeros(0, dtype=np.int64)
        self._allocate(16)

    def _allocate(self, capacity: int) -> None:
        """(Re)size every state array to ``capacity`` rows, keeping the first :attr:`size`."""
        for name in ("synced", "n_obs", *self._arrays()):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def _arrays(self) -> tuple[str, ...]:
        return ()

    def add(self, model: Forecaster) -> int:
        """A new row holding ``model``'s state; returns the row."""
        if self.size == self.synced.shape[0]:
            self._allocate(2 * self.size)
        row = self.size
        self.size += 1
        self.models.append(model)
        self.put(row, model)
        return row

    def put(self, row: int, model: Forecaster) -> None:
        """Take ``model``'s current state into ``row`` (the object becomes the row's)."""
        self.models[row] = model
        self.n_obs[row] = model.n_obs_
        self._load(row, model)
        self.synced[row] = True

    def get(self, row: int) -> Forecaster:
        """The row's model object, its attributes brought up to date from the arrays."""
        model = self.models[row]
        if not self.synced[row]:
            model.n_obs_ = int(self.n_obs[row])
            self._store(row, model)
            self.synced[row] = True
        return model

    def update(self, rows: np.ndarray, values: np.ndarray, counts: np.ndarray) -> None:
        """Absorb ``values`` (rows × columns, NaN-padded; ``counts`` points per row)."""
        self.synced[rows] = False
        self.n_obs[rows] += counts
        self._update(rows, values, counts)

    # ---- to implement ----------------------------------------------------------------
    def _load(self, row: int, model: Forecaster) -> None:
        raise NotImplementedError

    def _store(self, row: int, model: Forecaster) -> None:
        raise NotImplementedError

    def _update(self, rows: np.ndarray, values: np.ndarray, counts: np.ndarray) -> None:
        raise NotImplementedError

    def forecast(self, rows: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Point forecasts and forecast-error standard deviations, both (rows, horizon)."""
        raise NotImplementedError


class SESFamily(Family):
    """Simple exponential smoothing (:class:`~sparkhu.forecast.models.ses.SES`) in arrays."""

    kind = SES

    def __init__(self, template: Forecaster) -> None:
        self.alpha = np.zeros(0)
        self.level = np.zeros(0)
        self.sse = np.zeros(0)
        self.n_errors = np.zeros(0, dtype=np.int64)
        super().__init__(template)

    def _arrays(self) -> tuple[str, ...]:
        return ("alpha", "level", "sse", "n_errors")

    def _load(self, row: int, model: Forecaster) -> None:
        assert isinstance(model, SES)  # the bank routes by exact class
        self.alpha[row], self.level[row] = model.alpha_, model.level_
        self.sse[row], self.n_errors[row] = model.sse_, model.n_errors_

    def _store(self, row: int, model: Forecaster) -> None:
        assert isinstance(model, SES)
        model.alpha_, model.level_ = float(self.alpha[row]), float(self.level[row])
        model.sse_, model.n_errors_ = float(self.sse[row]), int(self.n_errors[row])

    def _update(self, rows: np.ndarray, values: np.ndarray, counts: np.ndarray) -> None:
        level, alpha = self.level[rows], self.alpha[rows]
        sse, n_errors = self.sse[rows], self.n_errors[rows]
        for column in values.T:  # one column of new points across all the rows at a time
            seen = np.isfinite(column)
            error = np.where(seen, column - level, 0.0)
            sse += error * error
            n_errors += seen
            level = np.where(seen, alpha * column + (1.0 - alpha) * level, level)
        self.level[rows], self.sse[rows], self.n_errors[rows] = level, sse, n_errors

    def forecast(self, rows: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        mean = np.repeat(self.level[rows][:, None], horizon, axis=1)
        n_errors = self.n_errors[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma2 = np.where(n_errors > 0, self.sse[rows] / n_errors, np.nan)
        steps = np.arange(horizon)
        sd = np.sqrt(sigma2[:, None] * (1.0 + steps[None, :] * self.alpha[rows][:, None] ** 2))
        return mean, sd


class SeasonalNaiveFamily(Family):
    """Seasonal naive (:class:`~sparkhu.forecast.models.naive.SeasonalNaive`): a ring of two seasons.

    Each row keeps the last ``2·season_length`` values (NaN where never written) in a ring,
    ``filled`` (how many of them are real) and the last observed value.
    """

    kind = SeasonalNaive

    def __init__(self, template: Forecaster) -> None:
        self.m = int(template.params["season_length"])
        self.ring = np.zeros((0, 2 * self.m))
        self.head = np.zeros(0, dtype=np.int64)
        self.filled = np.zeros(0, dtype=np.int64)
        super().__init__(template)

    def _arrays(self) -> tuple[str, ...]:
        return ("ring", "head", "filled")

    def _allocate(self, capacity: int) -> None:
        old = self.ring.shape[0]
        super()._allocate(capacity)
        self.ring[old:] = np.nan

    def _load(self, row: int, model: Forecaster) -> None:
        assert isinstance(model, SeasonalNaive)
        history = model.history_[-2 * self.m :]
        self.ring[row] = np.nan
        self.ring[row, : history.size] = history
        self.head[row] = history.size % (2 * self.m)
        self.filled[row] = history.size

    def _store(self, row: int, model: Forecaster) -> None:
        assert isinstance(model, SeasonalNaive)
        size = 2 * self.m
        n = int(self.filled[row])
        order = (int(self.head[row]) - n + np.arange(n)) % size
        model.history_ = self.ring[row, order].copy()
        model.fallback_reason_ = (
            None
            if n >= self.m
            else (
                f"history of {n} points is shorter than season_length={self.m}: naive forecast (last value)"
            )
        )

    def _update(self, rows: np.ndarray, values: np.ndarray, counts: np.ndarray) -> None:
        size = 2 * self.m
        for j in range(values.shape[1]):
            live = (counts > j) & (counts - j <= size)  # only a row's last two seasons matter
            at = rows[live]
            self.ring[at, self.head[at]] = values[live, j]
            self.head[at] = (self.head[at] + 1) % size
        self.filled[rows] = np.minimum(self.filled[rows] + counts, size)

    def _ordered(self, rows: np.ndarray) -> np.ndarray:
        """The rows' rings as (rows, 2m) oldest first, NaN where never filled."""
        size = 2 * self.m
        index = (self.head[rows][:, None] + np.arange(size)[None, :]) % size
        ordered = self.ring[rows[:, None], index]
        ordered[np.arange(size)[None, :] < (size - self.filled[rows])[:, None]] = np.nan
        return ordered

    def forecast(self, rows: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.m
        history = self._ordered(rows)
        observed = np.isfinite(history)
        last_at = np.where(
            observed.any(axis=1), history.shape[1] - 1 - np.argmax(observed[:, ::-1], axis=1), 0
        )
        last = np.where(observed.any(axis=1), history[np.arange(rows.size), last_at], np.nan)
        previous, latest = history[:, :m], history[:, m:]
        season = np.where(
            np.isfinite(latest), latest, np.where(np.isfinite(previous), previous, last[:, None])
        )
        short = self.filled[rows] < m
        phases = np.arange(horizon) % m
        mean = np.where(short[:, None], last[:, None], season[:, phases])
        steps = np.arange(1, horizon + 1)
        with np.errstate(invalid="ignore"):
            seasonal = latest - previous
            diffs = np.diff(history, axis=1)
            ms_seasonal = _mean_of_squares(seasonal)
            ms_naive = _mean_of_squares(diffs)
        sd = np.where(
            short[:, None],
            np.sqrt(ms_naive[:, None] * steps[None, :]),
            np.sqrt(ms_seasonal[:, None] * ((steps - 1) // m + 1)[None, :]),
        )
        return mean, sd


def _mean_of_squares(residuals: np.ndarray) -> np.ndarray:
    """Per row, the mean square of the finite residuals (NaN when there are none)."""
    finite = np.isfinite(residuals)
    count = finite.sum(axis=1)
    total = np.where(finite, residuals, 0.0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total.sum(axis=1) / np.maximum(count, 1), np.nan)


FAMILIES: dict[type[Forecaster], type[Family]] = {SES: SESFamily, SeasonalNaive: SeasonalNaiveFamily}
"""Model class → its vectorised family (exact class: a subclass may change the recursion)."""


class ModelBank(MutableMapping[str, Forecaster]):
    """Series id → fitted model; see the module docstring."""

    def __init__(self) -> None:
        self._families: dict[tuple[type[Forecaster], str], Family] = {}
        self._rows: dict[str, tuple[Family, int]] = {}
        self._objects: dict[str, Forecaster] = {}

    # ---- the mapping -----------------------------------------------------------------
    def __getitem__(self, series_id: str) -> Forecaster:
        found = self._rows.get(series_id)
        if found is not None:
            return found[0].get(found[1])
        return self._objects[series_id]

    def __setitem__(self, series_id: str, model: Forecaster) -> None:
        family_type = FAMILIES.get(type(model))
        if family_type is None or not model.is_fitted:
            self._drop_row(series_id)
            self._objects[series_id] = model
            return
        self._objects.pop(series_id, None)
        key = (type(model), repr(sorted(model.params.items())))
        family = self._families.get(key)
        if family is None:
            family = self._families[key] = family_type(model)
        found = self._rows.get(series_id)
        if found is not None and found[0] is family:
            family.put(found[1], model)
            return
        self._drop_row(series_id)
        self._rows[series_id] = (family, family.add(model))

    def __delitem__(self, series_id: str) -> None:
        if series_id in self._rows:
            self._drop_row(series_id)
        else:
            del self._objects[series_id]

    def _drop_row(self, series_id: str) -> None:
        # the row is left unused (swaps are rare); its series no longer points to it
        self._rows.pop(series_id, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._rows
        yield from self._objects

    def __len__(self) -> int:
        return len(self._rows) + len(self._objects)

    def __contains__(self, series_id: object) -> bool:
        return series_id in self._rows or series_id in self._objects

    # ---- many series at once ---------------------------------------------------------
    def _groups(
        self, series: Sequence[str]
    ) -> tuple[dict[int, tuple[Family, list[int], list[int]]], list[int]]:
        """Positions of ``series`` by family (with their rows), and the positions of object models."""
        groups: dict[int, tuple[Family, list[int], list[int]]] = {}
        objects: list[int] = []
        rows = self._rows
        for position, sid in enumerate(series):
            found = rows.get(sid)
            if found is None:
                objects.append(position)
                continue
            family, row = found
            group = groups.get(id(family))
            if group is None:
                group = groups[id(family)] = (family, [], [])
            group[1].append(position)
            group[2].append(row)
        return groups, objects

    def update_many(self, series: Sequence[str], values: Sequence[np.ndarray]) -> set[str]:
        """Absorb new points: ``values[i]`` (oldest first) into the model of ``series[i]``.

        Every series must have a model. A model that raises :class:`ForecastError` is logged
        and left as it was; returns those series (empty when all were updated).
        """
        failed: set[str] = set()
        groups, objects = self._groups(series)
        for family, positions, rows in groups.values():
            matrix, counts = padded([np.asarray(values[p], dtype=np.float64) for p in positions])
            family.update(np.asarray(rows, dtype=np.int64), matrix, counts)
        for position in objects:
            sid = series[position]
            try:
                self._objects[sid].update(values[position])
            except ForecastError as exc:
                log.warning("model of %s not updated: %s", sid, exc)
                failed.add(sid)
        return failed

    def forecast_many(
        self, series: Sequence[str], horizon: int, coverage: float | None = None
    ) -> BankForecast:
        """``horizon`` forecasts of each of ``series`` (in that order), bounds for ``coverage``.

        A model that raises :class:`ForecastError` gets ``ok`` False (and is logged).
        """
        n = len(series)
        mean = np.full((n, horizon), np.nan)
        lower = np.full((n, horizon), np.nan)
        upper = np.full((n, horizon), np.nan)
        ok = np.zeros(n, dtype=bool)
        z = None if coverage is None else _z(float(coverage))
        groups, objects = self._groups(series)
        for family, positions, rows in groups.values():
            at = np.asarray(positions, dtype=np.int64)
            mean[at], sd = family.forecast(np.asarray(rows, dtype=np.int64), horizon)
            if z is not None:
                lower[at], upper[at] = mean[at] - z * sd, mean[at] + z * sd
            ok[at] = True
        for position in objects:
            sid = series[position]
            model = self._objects.get(sid)
            if model is None:
                continue
            try:
                mean[position] = model.forecast(horizon)
                if coverage is not None:
                    lower[position], upper[position] = model.forecast_interval(horizon, coverage)
            except ForecastError as exc:
                log.warning("model of %s did not forecast: %s", sid, exc)
                continue
            ok[position] = True
        return BankForecast(mean, lower, upper, ok)

    def fitted(self, series_id: str) -> bool:
        """True when the series has a model and it is fitted."""
        if series_id in self._rows:
            return True
        model = self._objects.get(series_id)
        return model is not None and model.is_fitted

    def vectorised(self, series_id: str) -> bool:
        """True when the series' model state lives in a family's arrays."""
        return series_id in self._rows


def state_of(model: Forecaster) -> dict[str, Any]:
    """The learned attributes (ending in ``_``) of a model, for comparisons in tests and debugging.

    >>> from sparkhu.forecast.models import make_model
    >>> state_of(make_model("ses", alpha=0.5).fit(np.array([2.0])))
    {'alpha_': 0.5, 'level_': 2.0, 'n_errors_': 0, 'n_obs_': 1, 'sse_': 0.0}
    """
    return {k: v for k, v in sorted(vars(model).items()) if k.endswith("_") and not k.startswith("_")}
