"""Statistical models from statsforecast: AutoETS, Holt-Winters, AutoARIMA, AutoTheta, MSTL.

Each class wraps one statsforecast model used directly on a numpy array (no data frames)
and follows the :class:`~sparkhu.forecast.base.Forecaster` convention. Shared behaviour:

* **Missing values**: leading NaNs are dropped, inner and trailing ones are filled by linear
  interpolation (statsforecast needs a clean array).
* **Fallbacks, never a crash**: a history that is mostly missing (more than ``max_missing``
  of it NaN), constant, shorter than :data:`MIN_POINTS`, or on which the library fails or
  returns non-finite forecasts is forecast by the **naive** method (last observed value),
  with the reason in ``fallback_reason_``. A history shorter than two seasons is fitted
  without seasonality, also with a reason. ``fallback_reason_`` is ``None`` otherwise.
* **Long seasons**: statsforecast's ETS ignores seasons above 24 steps and its seasonal ARIMA
  is very slow above 12 (minutes for a half-hourly day), so above those lengths AutoETS and
  AutoARIMA are fitted on the STL-deseasonalised series and the last seasonal cycle is
  added back (statsforecast's MSTL with the model as trend forecaster). ``method_`` says
  which way was taken.
* **update** keeps the estimated parameters; ``fit`` re-estimates. ETS models (AutoETS,
  Holt-Winters, fitted natively rather than on an STL decomposition) run the state-space
  recursion over the new points only, from the last state, and keep the running sum of
  squared errors for the interval (``ets_state_``): O(new points), and the forecasts equal
  statsforecast's ``forward`` over the whole history. The other models (and an ETS update
  with a missing value, which the history interpolates) re-run the filter on the extended
  history (statsforecast's ``forward``).
* Library warnings (convergence notes) are silenced; only the outcome matters here.

The first fit of each model in a process compiles numba code; :func:`warm_up` does it once
up front (about a second).

>>> y = 10 + np.sin(np.arange(48) * np.pi / 6)
>>> model = AutoETS(season_length=12).fit(y)
>>> model.forecast(3).round(2).tolist(), model.fallback_reason_
([10.0, 10.5, 10.87], None)
>>> AutoETS().fit(np.full(20, 3.0)).fallback_reason_
'constant history (every value is 3.0): naive forecast'
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np

from sparkhu.errors import ForecastError
from sparkhu.forecast.base import Forecaster

MIN_POINTS = 8
"""Fewer observed points than this: naive fallback."""

_LEVEL = 80
_Z80 = 1.2815515655446004  # standard normal quantile of 0.9
ETS_MAX_SEASON = 24
ARIMA_MAX_SEASON = 12


def _check_positive_int(model: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ForecastError(f"{model}: {name} must be a positive integer, got {value!r}")


def clean_history(y: np.ndarray) -> np.ndarray:
    """``y`` without leading NaNs, inner/trailing NaNs linearly interpolated (needs a finite value)."""
    finite = np.isfinite(y)
    first = int(np.argmax(finite))
    y = y[first:]
    finite = finite[first:]
    if finite.all():
        return y.copy()
    idx = np.arange(y.size)
    return np.interp(idx, idx[finite], y[finite])


class StatsForecastModel(Forecaster):
    """Common machinery of the statsforecast wrappers (subclasses build the library model).

    Learned state: ``history_`` (the cleaned history), ``fallback_reason_``, ``method_``
    (``"seasonal"``, ``"non-seasonal"``, ``"stl"`` or ``"naive"``) and ``sf_model_``.
    """

    season_length: int
    max_missing: float

    history_: np.ndarray
    fallback_reason_: str | None
    method_: str
    sf_model_: Any

    def _reset(self) -> None:
        self.history_ = np.empty(0)
        self.fallback_reason_ = None
        self.method_ = ""
        self.sf_model_ = None
        self.ets_state_: dict[str, Any] | None = None
        self._stale = False
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    # ---- subclass hooks --------------------------------------------------------------
    def _build(self, season_length: int, method: str) -> Any:
        """The statsforecast model for ``season_length`` (1 = non-seasonal) and ``method``."""
        raise NotImplementedError

    def _method_for(self, season_length: int) -> str:
        """``"seasonal"`` or ``"stl"`` for a seasonal fit with ``season_length`` > 1."""
        return "seasonal"

    # ---- fitting ---------------------------------------------------------------------
    def _fit(self, y: np.ndarray) -> None:
        observed = np.isfinite(y)
        self.history_ = clean_history(y)
        missing = 1.0 - observed.sum() / y.size
        finite = y[observed]
        if missing > self.max_missing:
            self._fallback(f"{missing:.0%} of the history is missing (more than {self.max_missing:.0%})")
            return
        if np.ptp(finite) == 0.0:
            self._fallback(f"constant history (every value is {finite[0]})")
            return
        if finite.size < MIN_POINTS:
            self._fallback(f"only {finite.size} observed points (at least {MIN_POINTS} needed)")
            return
        m = int(self.season_length)
        if m > 1 and self.history_.size < 2 * m + 2:
            self.fallback_reason_ = (
                f"history of {self.history_.size} points is shorter than two seasons "
                f"(season_length={m}): fitted without seasonality"
            )
            m = 1
        method = self._method_for(m) if m > 1 else "non-seasonal"
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                self.sf_model_ = self._build(m, method).fit(self.history_)
                check = self.sf_model_.predict(1)["mean"]
        except Exception as exc:  # the library's failure on this series becomes a fallback
            self._fallback(f"{type(self).__name__} failed: {type(exc).__name__}: {exc}")
            return
        if not np.isfinite(check).all():
            self._fallback(f"{type(self).__name__} produced non-finite forecasts")
            return
        self.method_ = method

    def _fallback(self, reason: str) -> None:
        self.sf_model_ = None
        self.method_ = "naive"
        self.fallback_reason_ = f"{reason}: naive forecast"

    def _update(self, y_new: np.ndarray) -> None:
        combined = np.concatenate([self.history_, y_new])
        incremental = not self._stale and np.isfinite(y_new).all() and self._absorb(y_new)
        self.history_ = clean_history(combined) if np.isfinite(combined).any() else combined
        if not incremental:
            self.ets_state_ = None
            self._stale = True
        self._cache.clear()

    def _absorb(self, y_new: np.ndarray) -> bool:
        """Bring the fitted model's state up to date with ``y_new`` (all finite) in O(len(y_new)).

        Returns False when the model cannot (the caller re-runs the filter over the history).
        """
        return False

    # ---- forecasting -----------------------------------------------------------------
    def _predict(self, horizon: int) -> dict[str, np.ndarray]:
        if horizon in self._cache:
            return self._cache[horizon]
        if self.sf_model_ is None:
            out = self._naive(horizon)
        else:
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    if self.ets_state_ is not None:
                        from statsforecast.ets import forecast_ets

                        raw = forecast_ets(self.ets_state_, h=horizon, level=[_LEVEL])
                    elif self._stale:
                        raw = self.sf_model_.forward(y=self.history_, h=horizon, level=[_LEVEL])
                    else:
                        raw = self.sf_model_.predict(horizon, level=[_LEVEL])
                out = {
                    "mean": np.asarray(raw["mean"], dtype="float64"),
                    "sd": (np.asarray(raw[f"hi-{_LEVEL}"]) - np.asarray(raw[f"lo-{_LEVEL}"])) / (2 * _Z80),
                }
            except Exception as exc:  # keep serving: naive, with the reason recorded
                self._fallback(f"{type(self).__name__} forecast failed: {type(exc).__name__}: {exc}")
                out = self._naive(horizon)
            if not np.isfinite(out["mean"]).all():
                self._fallback(f"{type(self).__name__} produced non-finite forecasts")
                out = self._naive(horizon)
        self._cache[horizon] = out
        return out

    def _naive(self, horizon: int) -> dict[str, np.ndarray]:
        h = self.history_
        last = float(h[-1]) if h.size and np.isfinite(h[-1]) else float("nan")
        diffs = np.diff(h)
        diffs = diffs[np.isfinite(diffs)]
        sigma = float(np.sqrt(np.mean(diffs**2))) if diffs.size else float("nan")
        return {"mean": np.full(horizon, last), "sd": sigma * np.sqrt(np.arange(1, horizon + 1))}

    def _forecast(self, horizon: int) -> np.ndarray:
        return self._predict(horizon)["mean"].copy()

    def _forecast_sd(self, horizon: int) -> np.ndarray:
        return self._predict(horizon)["sd"].copy()


class AutoETS(StatsForecastModel):
    """Exponential smoothing state-space model chosen by AICc (``model="ZZZ"``: all automatic).

    Seasons longer than 24 steps: ETS without seasonality on the STL-deseasonalised series.
    """

    name = "auto_ets"

    def __init__(
        self, season_length: int = 1, model: str = "ZZZ", damped: bool | None = None, max_missing: float = 0.5
    ) -> None:
        _check_positive_int(self.name, "season_length", season_length)
        self.season_length = season_length
        self.model = model
        self.damped = damped
        self.max_missing = max_missing
        super().__init__()

    def _method_for(self, season_length: int) -> str:
        return "stl" if season_length > ETS_MAX_SEASON else "seasonal"

    def _absorb(self, y_new: np.ndarray) -> bool:
        if self.sf_model_ is None or self.method_ == "stl" or not hasattr(self.sf_model_, "model_"):
            return False
        state = self.ets_state_
        if state is None:  # the first update after a fit: the errors of the history, once
            state = self.ets_state_ = _ets_state(self.sf_model_.model_, self.history_)
        _ets_step(state, y_new)
        return True

    def _build(self, season_length: int, method: str) -> Any:
        from statsforecast.models import MSTL
        from statsforecast.models import AutoETS as SFAutoETS

        model = self.model
        if method == "stl":
            return MSTL(season_length=season_length, trend_forecaster=SFAutoETS(model=model[:2] + "N"))
        if season_length == 1 and model[2] not in "NZ":
            model = model[:2] + "N"
        return SFAutoETS(season_length=season_length, model=model, damped=self.damped)


def _ets_run(model: dict[str, Any], y: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """statsforecast's ETS recursion over ``y`` from the state ``start``: (errors, states)."""
    from statsforecast.ets import pegelsresid_C

    errortype, trendtype, seasontype = model["components"][:3]
    alpha, beta, gamma, phi = model["par"][:4]
    _, errors, states, _ = pegelsresid_C(
        y=np.asarray(y, dtype=np.float64),
        m=model["m"],
        init_state=start,
        errortype=errortype,
        trendtype=trendtype,
        seasontype=seasontype,
        damped=model["components"][3] != "N",
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        phi=phi,
        nmse=1,
    )
    return errors, states


def _ets_state(model: dict[str, Any], history: np.ndarray) -> dict[str, Any]:
    """What :func:`statsforecast.ets.forecast_ets` needs, as ``forward`` over ``history`` makes it.

    The last state, the parameters and ``sigma2`` = Σe² / (n − parameters − 1) (``forward``'s
    formula), with the running Σe² and n kept to update it.
    """
    start = np.asarray(model["par"][4:], dtype=np.float64)
    errors, states = _ets_run(model, history, start)
    squares = errors**2
    state = {key: model[key] for key in ("components", "par", "m", "n_params")}
    state |= {"states": states[-1:].copy(), "sse": float(squares[np.isfinite(squares)].sum())}
    state |= {"n": int(history.size), "residuals": None, "fitted": None}
    state["sigma2"] = state["sse"] / (state["n"] - state["n_params"] - 1)
    return state


def _ets_step(state: dict[str, Any], y_new: np.ndarray) -> None:
    """Advance ``state`` (from :func:`_ets_state`) over ``y_new``: O(len(y_new))."""
    errors, states = _ets_run(state, y_new, state["states"][-1])
    squares = errors**2
    state["states"] = states[-1:].copy()
    state["sse"] += float(squares[np.isfinite(squares)].sum())
    state["n"] += int(y_new.size)
    state["sigma2"] = state["sse"] / (state["n"] - state["n_params"] - 1)


class HoltWinters(AutoETS):
    """Holt-Winters: ETS with additive trend and season (``error_type`` "A" or "M")."""

    name = "holt_winters"

    def __init__(self, season_length: int = 1, error_type: str = "A", max_missing: float = 0.5) -> None:
        if error_type not in ("A", "M"):
            raise ForecastError(f"holt_winters: error_type must be 'A' or 'M', got {error_type!r}")
        self.error_type = error_type
        super().__init__(season_length, model=f"{error_type}A{error_type}", max_missing=max_missing)


class AutoARIMA(StatsForecastModel):
    """ARIMA with orders chosen stepwise by AICc (Hyndman-Khandakar).

    Seasons longer than ``max_native_season`` steps: non-seasonal AutoARIMA on the
    STL-deseasonalised series (seasonal ARIMA there takes minutes per series).
    ``approximation=None`` approximates the likelihood during the order search when the
    history has more than 150 points or a season above 12 (R's rule; 15x faster there).
    """

    name = "auto_arima"

    def __init__(
        self,
        season_length: int = 1,
        max_native_season: int = ARIMA_MAX_SEASON,
        approximation: bool | None = None,
        max_missing: float = 0.5,
    ) -> None:
        _check_positive_int(self.name, "season_length", season_length)
        _check_positive_int(self.name, "max_native_season", max_native_season)
        self.season_length = season_length
        self.max_native_season = max_native_season
        self.approximation = approximation
        self.max_missing = max_missing
        super().__init__()

    def _method_for(self, season_length: int) -> str:
        return "stl" if season_length > self.max_native_season else "seasonal"

    def _build(self, season_length: int, method: str) -> Any:
        from statsforecast.models import MSTL
        from statsforecast.models import AutoARIMA as SFAutoARIMA

        approximation = self.approximation
        if approximation is None:
            approximation = self.history_.size > 150 or season_length > 12
        if method == "stl":
            trend = SFAutoARIMA(season_length=1, approximation=approximation)
            return MSTL(season_length=season_length, trend_forecaster=trend)
        return SFAutoARIMA(season_length=season_length, approximation=approximation)


class AutoTheta(StatsForecastModel):
    """The Theta method (standard, optimised, dynamic variants chosen by MSE)."""

    name = "auto_theta"

    def __init__(
        self, season_length: int = 1, decomposition_type: str = "multiplicative", max_missing: float = 0.5
    ) -> None:
        _check_positive_int(self.name, "season_length", season_length)
        if decomposition_type not in ("multiplicative", "additive"):
            raise ForecastError(
                "auto_theta: decomposition_type must be 'multiplicative' or 'additive', "
                f"got {decomposition_type!r}"
            )
        self.season_length = season_length
        self.decomposition_type = decomposition_type
        self.max_missing = max_missing
        super().__init__()

    def _build(self, season_length: int, method: str) -> Any:
        from statsforecast.models import AutoTheta as SFAutoTheta

        decomposition = self.decomposition_type
        if decomposition == "multiplicative" and np.nanmin(self.history_) <= 0:
            decomposition = "additive"
        return SFAutoTheta(season_length=season_length, decomposition_type=decomposition)


class MSTL(StatsForecastModel):
    """STL decomposition over one or several seasons; the trend by non-seasonal AutoETS.

    ``season_length``: the main season; ``extra_seasons``: further ones (e.g. ``(168,)`` for a
    weekly cycle in hourly data). Seasons that do not fit twice in the history are dropped.
    """

    name = "mstl"

    def __init__(
        self, season_length: int = 1, extra_seasons: tuple[int, ...] = (), max_missing: float = 0.5
    ) -> None:
        _check_positive_int(self.name, "season_length", season_length)
        for extra in extra_seasons:
            _check_positive_int(self.name, "extra_seasons", extra)
        self.season_length = season_length
        self.extra_seasons = tuple(extra_seasons)
        self.max_missing = max_missing
        super().__init__()

    def _build(self, season_length: int, method: str) -> Any:
        from statsforecast.models import MSTL as SFMSTL
        from statsforecast.models import AutoETS as SFAutoETS

        trend = SFAutoETS(model="ZZN")
        if season_length == 1:
            return trend
        seasons = sorted(
            {season_length, *(s for s in self.extra_seasons if 1 < s and 2 * s + 2 <= self.history_.size)}
        )
        return SFMSTL(season_length=seasons, trend_forecaster=trend)


class SeasonalModelClass(Protocol):
    """A statistical model class: every one is built from a season length alone (the rest defaults)."""

    def __call__(self, season_length: int = 1) -> StatsForecastModel:
        """A new, unfitted model for seasons of ``season_length`` steps."""
        ...


STATISTICAL_MODELS: tuple[SeasonalModelClass, ...] = (AutoETS, HoltWinters, AutoARIMA, AutoTheta, MSTL)


def warm_up() -> float:
    """Compile the numba code of every statistical model once in this process; the seconds taken."""
    import time

    start = time.perf_counter()
    y = 10.0 + np.sin(np.arange(40) * np.pi / 4) + np.linspace(0.0, 1.0, 40)
    for cls in STATISTICAL_MODELS:
        cls(season_length=8).fit(y).update(y[:2]).forecast(2)
    return time.perf_counter() - start
