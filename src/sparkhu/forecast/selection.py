"""Champion selection by back-test error, the default model portfolio, and a mean ensemble.

:func:`select_champion` back-tests every candidate on the same windows, records each one's
scores (or the error that stopped it: a failing candidate is skipped, never fatal), and
names the one with the lowest mean back-test ``metric`` the champion. With
``ensemble_top_k=k`` the mean of the best ``k`` candidates is scored too — from the
forecasts already made, at no extra fitting cost — and wins if it is better.

>>> from sparkhu.forecast.models import SES, SeasonalNaive
>>> y = np.tile([1.0, 5.0, 3.0, 8.0], 12) + np.arange(48) * 0.01
>>> sel = select_champion(y, [SES(), SeasonalNaive(season_length=4)], horizon=4, windows=3, season_length=4)
>>> sel.champion, sorted(sel.scores)
('seasonal_naive', ['seasonal_naive', 'ses'])
>>> sel.champion_model().fit(y).forecast(2).round(2).tolist()
[1.44, 5.45]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkhu.errors import ForecastError
from sparkhu.forecast.backtest import BacktestResult, backtest, plan_windows
from sparkhu.forecast.base import Forecaster, _as_history
from sparkhu.forecast.metrics import METRICS, score


class MeanEnsemble(Forecaster):
    """The mean of its members' forecasts (each member fitted and updated on the same data).

    ``members``: unfitted models (kept as given; fitting uses clones). Learned state:
    ``fitted_`` (the fitted member clones).

    >>> from sparkhu.forecast.models import SES, SeasonalNaive
    >>> m = MeanEnsemble((SES(alpha=1.0), SeasonalNaive(season_length=2))).fit(np.array([1.0, 3.0, 2.0]))
    >>> m.forecast(2).tolist()
    [2.5, 2.0]
    """

    name = "ensemble"

    def __init__(self, members: Sequence[Forecaster] = ()) -> None:
        if not members or not all(isinstance(m, Forecaster) for m in members):
            raise ForecastError("ensemble: members must be a non-empty sequence of Forecaster models")
        self.members = tuple(members)
        super().__init__()

    def _reset(self) -> None:
        self.fitted_: list[Forecaster] = []

    def _fit(self, y: np.ndarray) -> None:
        self.fitted_ = [m.clone().fit(y) for m in self.members]

    def _update(self, y_new: np.ndarray) -> None:
        for m in self.fitted_:
            m.update(y_new)

    def _forecast(self, horizon: int) -> np.ndarray:
        return np.mean([m.forecast(horizon) for m in self.fitted_], axis=0)

    @property
    def fallback_reason_(self) -> str | None:
        """The members' fallback reasons joined (None when no member fell back)."""
        reasons = [f"{m.name}: {r}" for m in self.fitted_ if (r := getattr(m, "fallback_reason_", None))]
        return "; ".join(reasons) or None

    def __repr__(self) -> str:
        return f"MeanEnsemble({', '.join(m.name for m in self.members)})"


def labels_for(candidates: Sequence[Forecaster]) -> list[str]:
    """A unique label per candidate: its name, with ``#2``, ``#3``... for repeated names."""
    seen: dict[str, int] = {}
    out = []
    for model in candidates:
        seen[model.name] = seen.get(model.name, 0) + 1
        out.append(model.name if seen[model.name] == 1 else f"{model.name}#{seen[model.name]}")
    return out


@dataclass
class Selection:
    """The outcome of :func:`select_champion`: the full score table and the choice."""

    champion: str
    """Label of the chosen candidate (``ensemble(a+b)`` for an ensemble)."""
    metric: str
    reason: str
    """One sentence: why this champion (its score, the runner-up's)."""
    scores: dict[str, dict[str, float]]
    """Label → mean back-test score per metric, for every candidate that ran."""
    errors: dict[str, str]
    """Label → the error that stopped a candidate (skipped)."""
    results: dict[str, BacktestResult] = field(repr=False)
    candidates: dict[str, Forecaster] = field(repr=False)
    """Label → the unfitted candidate (and the ensemble, when one was scored)."""

    def champion_model(self) -> Forecaster:
        """A fresh, unfitted copy of the champion."""
        return self.candidates[self.champion].clone()

    def table(self) -> list[dict[str, Any]]:
        """One row per candidate, best first: label, every metric, windows, seconds, fallback, error."""
        rows: list[dict[str, Any]] = []
        for label, values in sorted(self.scores.items(), key=lambda kv: _key(kv[1][self.metric])):
            result = self.results[label]
            reasons = sorted({r for r in result.fallbacks if r})
            rows.append(
                {"model": label, **values, "windows": result.windows, "seconds": result.seconds}
                | {"champion": label == self.champion, "fallback": "; ".join(reasons) or None, "error": None}
            )
        for label, error in self.errors.items():
            rows.append({"model": label, "champion": False, "error": error})
        return rows


def _key(value: float) -> float:
    return value if np.isfinite(value) else float("inf")


def select_champion(
    y: np.ndarray,
    candidates: Sequence[Forecaster],
    *,
    horizon: int,
    step: int | None = None,
    windows: int = 3,
    season_length: int = 1,
    metric: str = "mase",
    refit: bool | int = True,
    ensemble_top_k: int = 0,
) -> Selection:
    """Back-test every candidate on ``y`` and choose the one with the lowest mean ``metric``.

    Arguments as :func:`~sparkhu.forecast.backtest.backtest`. Ties go to the earlier
    candidate (list simple models first). ``ensemble_top_k`` ≥ 2 also scores the mean of
    the best k. Raises :class:`ForecastError` for an unknown metric, an empty candidate
    list, a history too short for any window, or when every candidate fails.
    """
    if metric not in METRICS:
        raise ForecastError(f"select_champion: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if not candidates:
        raise ForecastError("select_champion: no candidates; pass at least one model (see default_portfolio)")
    arr = _as_history(y, "select_champion")
    plan_windows(arr.size, horizon=horizon, step=step, windows=windows, season_length=season_length)
    labels = labels_for(candidates)
    results: dict[str, BacktestResult] = {}
    errors: dict[str, str] = {}
    for label, model in zip(labels, candidates, strict=True):
        try:
            results[label] = backtest(
                arr, model, horizon=horizon, step=step, windows=windows,
                season_length=season_length, refit=refit, label=label,
            )  # fmt: skip
        except Exception as exc:  # one failing candidate must not stop the selection
            errors[label] = f"{type(exc).__name__}: {exc}"
    if not results:
        raise ForecastError(f"select_champion: every candidate failed: {errors}")
    pool = dict(zip(labels, candidates, strict=True))
    scores = {label: r.table() for label, r in results.items()}
    if ensemble_top_k >= 2 and len(results) >= 2:
        ranked = sorted(results, key=lambda lb: _key(scores[lb][metric]))[:ensemble_top_k]
        ens_label = f"ensemble({'+'.join(ranked)})"
        results[ens_label] = _ensemble_result(arr, [results[lb] for lb in ranked], ens_label)
        scores[ens_label] = results[ens_label].table()
        pool[ens_label] = MeanEnsemble(tuple(pool[lb] for lb in ranked))
    ranking = sorted(scores, key=lambda lb: _key(scores[lb][metric]))  # stable: ties keep input order
    champion = ranking[0]
    best = scores[champion][metric]
    windows_run = results[champion].windows
    reason = f"lowest mean back-test {metric} {best:.4g} over {windows_run} window(s) of horizon {horizon}"
    if len(ranking) > 1:
        reason += f"; runner-up {ranking[1]} {scores[ranking[1]][metric]:.4g}"
    if errors:
        reason += f"; {len(errors)} candidate(s) failed and were skipped"
    return Selection(champion, metric, reason, scores, errors, results, pool)


def _ensemble_result(y: np.ndarray, members: list[BacktestResult], label: str) -> BacktestResult:
    """The back-test of the members' mean, computed from their forecasts (same windows)."""
    first = members[0]
    forecasts = np.mean([m.forecasts for m in members], axis=0)
    names = tuple(first.scores)
    per_window = [
        score(
            first.actuals[i], forecasts[i], insample=y[:o], season_length=first.season_length, metrics=names
        )
        for i, o in enumerate(first.origins.tolist())
    ]
    return BacktestResult(
        model=label,
        horizon=first.horizon,
        step=first.step,
        season_length=first.season_length,
        origins=first.origins,
        forecasts=forecasts,
        actuals=first.actuals,
        scores={n: np.array([w[n] for w in per_window]) for n in names},
        fallbacks=[None] * first.windows,
        seconds=sum(m.seconds for m in members),
    )


PORTFOLIO = ("seasonal_naive", "ses", "auto_ets", "auto_arima", "auto_theta", "mstl", "nlinear", "dlinear")
"""Names of the default portfolio's models, in order (simplest first)."""


def default_portfolio(
    season_length: int | Sequence[int] = 1,
    *,
    horizon: int = 20,
    include: Iterable[str] | None = None,
) -> list[Forecaster]:
    """The standard candidates for a series with the given season(s), simplest first.

    ``season_length``: one season, or several (the first is the main one; MSTL is included
    only when there are several seasons, as the others handle one). ``horizon``: the
    linear models' direct output length. ``include``: names from :data:`PORTFOLIO` to keep
    (default all that apply).
    """
    from sparkhu.forecast.models import (
        MSTL,
        SES,
        AutoARIMA,
        AutoETS,
        AutoTheta,
        DLinear,
        NLinear,
        SeasonalNaive,
    )

    seasons = [season_length] if isinstance(season_length, int | np.integer) else list(season_length)
    if not seasons or any(
        isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in seasons
    ):
        raise ForecastError(
            f"default_portfolio: season lengths must be positive integers, got {season_length!r}"
        )
    wanted = set(PORTFOLIO if include is None else include)
    unknown = wanted - set(PORTFOLIO)
    if unknown:
        raise ForecastError(
            f"default_portfolio: unknown model(s) {sorted(unknown)}; known: {', '.join(PORTFOLIO)}"
        )
    m = int(seasons[0])
    extra = tuple(int(s) for s in seasons[1:])
    build = {
        "seasonal_naive": lambda: SeasonalNaive(season_length=m),
        "ses": lambda: SES(),
        "auto_ets": lambda: AutoETS(season_length=m),
        "auto_arima": lambda: AutoARIMA(season_length=m),
        "auto_theta": lambda: AutoTheta(season_length=m),
        "mstl": lambda: MSTL(season_length=m, extra_seasons=extra),
        "nlinear": lambda: NLinear(output=horizon, season_length=m),
        "dlinear": lambda: DLinear(output=horizon, season_length=m),
    }
    return [build[name]() for name in PORTFOLIO if name in wanted and (name != "mstl" or extra)]
