"""Residual anomalies: detection on the decomposition's residual, and their handling.

:func:`detect` flags residuals outside ``mean ± k·σ`` (``method="sigma"``, the original
rule, k = 3) or ``median ± k·1.4826·MAD`` (``method="mad"``: robust, the anomalies do not
inflate the scale that should expose them). ``score`` is ``|resid − centre| / scale``, so a
point is flagged when its score exceeds ``k``.

:func:`handle` replaces the flagged points of the series:

* ``method="ema"`` (the original's): the exponential moving average of the **trailing
  ``window`` non-anomalous values** before the point, ``α = 2/(window + 1)``, weights
  ``(1 − α)^j`` for the j-th latest value, normalised. This is what pandas'
  ``ewm(span=window, adjust=True, ignore_na=True).mean()`` gives on those ``window`` values;
  unlike an EMA over the whole history, older values carry no weight, and flagged values
  never feed it, so the replacement of a long anomalous stretch keeps to the level before
  it instead of following the anomaly. A flagged point with no earlier valid value takes
  the first valid value after it.
* ``method="seasonal"``: ``trend + seasonal`` of the decomposition at that timestamp (the
  EMA where the components lack the timestamp).

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> ts = pd.date_range("2024-01-01", periods=8, freq="min", tz="UTC").as_unit("us")
>>> comp = pd.DataFrame({"ts": ts, "resid": [0.1, -0.1, 0.0, 0.2, -0.2, 9.0, 0.1, 0.0]})
>>> flags = detect(TaskInput("a/b/c", {"components": comp}, SeriesMeta("a/b/c"), ts[0], ts[-1]),
...                method="mad").frames["flags"]
>>> flags["ts"].dt.minute.tolist(), flags["method"].tolist()
([5], ['mad'])
>>> points = pd.DataFrame({"ts": ts, "value": [1.0, 1, 1, 1, 1, 50, 1, 1]})
>>> inp = TaskInput("a/b/c", {"points": points, "flags": flags}, SeriesMeta("a/b/c"), ts[0], ts[-1])
>>> handle(inp).frames["points"]["value"].tolist()
[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks.decomposition import point_arrays
from sparkhu.timeaxis import from_us_index

DETECT_METHODS = ("sigma", "mad")
HANDLE_METHODS = ("ema", "seasonal")
MIN_POINTS = 5
MAD_TO_SIGMA = 1.4826


def detect(inp: TaskInput, *, k: float = 3.0, method: str = "sigma") -> TaskOutput:
    """Flag the residuals of ``components`` (``ts``, ``resid``) beyond ``k`` scales from the centre.

    Output ``flags``: ``ts``, ``resid``, ``score``, ``method``, one row per anomaly.
    """
    sid = inp.series_id
    if method not in DETECT_METHODS:
        raise PipelineError(f"{sid}: detect method must be one of {DETECT_METHODS}, got {method!r}")
    if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0:
        raise PipelineError(f"{sid}: detect needs k > 0 (3 is the usual), got {k!r}")
    comp = inp.frames.get("components")
    if comp is None:
        raise PipelineError(f"{sid}: detect needs a 'components' frame, got {sorted(inp.frames)}")
    if "resid" not in getattr(comp, "columns", ()):
        raise PipelineError(f"{sid}: components frame lacks column 'resid'; it comes from decompose()")
    ts_us, resid = point_arrays(comp.rename(columns={"resid": "value"})[["ts", "value"]], sid)
    finite = np.isfinite(resid)
    if finite.sum() < MIN_POINTS:
        return TaskOutput(skipped=f"{int(finite.sum())} finite residual(s); detection needs {MIN_POINTS}")
    r = resid[finite]
    if method == "sigma":
        centre, scale = float(r.mean()), float(r.std(ddof=1))
    else:
        centre = float(np.median(r))
        scale = MAD_TO_SIGMA * float(np.median(np.abs(r - centre)))
        if scale == 0:  # more than half the residuals equal: fall back to the mean absolute deviation
            scale = 1.2533 * float(np.mean(np.abs(r - centre)))
    score = np.full(resid.size, np.nan)
    if scale > 0:
        score[finite] = np.abs(r - centre) / scale
    flagged = np.nan_to_num(score, nan=0.0) > k
    flags = pd.DataFrame(
        {
            "ts": from_us_index(ts_us[flagged]),
            "resid": resid[flagged],
            "score": score[flagged],
            "method": pd.Series([method] * int(flagged.sum()), dtype=object),
        }
    )
    report = {
        "points": int(finite.sum()),
        "anomalies": int(flagged.sum()),
        "method": method,
        "k": float(k),
        "centre": centre,
        "scale": scale,
        "lower": centre - k * scale,
        "upper": centre + k * scale,
    }
    return TaskOutput(frames={"flags": flags}, report=report)


def handle(inp: TaskInput, *, method: str = "ema", window: int = 10) -> TaskOutput:
    """Replace the points flagged in ``flags`` (by ``ts``); output the whole series as ``points``."""
    sid = inp.series_id
    if method not in HANDLE_METHODS:
        raise PipelineError(f"{sid}: handle method must be one of {HANDLE_METHODS}, got {method!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise PipelineError(f"{sid}: handle needs an integer window >= 1, got {window!r}")
    frame = inp.frames.get("points")
    if frame is None:
        raise PipelineError(f"{sid}: handle needs a 'points' frame, got {sorted(inp.frames)}")
    ts_us, values = point_arrays(frame, sid)
    ts = from_us_index(ts_us)
    flags = inp.frames.get("flags")
    flagged = np.zeros(ts_us.size, dtype=bool)
    if flags is not None and len(flags):
        if "ts" not in flags.columns:
            raise PipelineError(f"{sid}: flags frame lacks column 'ts'; it comes from detect()")
        flag_us = pd.to_datetime(flags["ts"], utc=True).dt.as_unit("us").astype("int64").to_numpy()
        flagged = np.isin(ts_us, flag_us)
    report: dict[str, object] = {"points": int(ts_us.size), "flagged": int(flagged.sum()), "method": method}
    out = values.copy()
    if flagged.any():
        valid = np.isfinite(values) & ~flagged
        if not valid.any():
            return TaskOutput(skipped="every point is flagged or missing: nothing to replace them with")
        targets = np.flatnonzero(flagged)
        replacement = np.full(targets.size, np.nan)
        if method == "seasonal":
            replacement = _seasonal_at(inp.frames.get("components"), ts_us[targets], sid)
            report["seasonal_missing"] = int(np.isnan(replacement).sum())
        todo = np.isnan(replacement)
        if todo.any():
            replacement[todo] = trailing_ema(values, valid, targets[todo], window)
        out[targets] = replacement
    return TaskOutput(frames={"points": pd.DataFrame({"ts": ts, "value": out})}, report=report)


def trailing_ema(values: np.ndarray, valid: np.ndarray, targets: np.ndarray, window: int) -> np.ndarray:
    """EMA (α = 2/(window+1), normalised weights) of the last ``window`` valid values before each target.

    Vectorised: a (targets × window) gather of the valid values' positions. A target with no
    valid value before it gets the first valid value after it.
    """
    alpha = 2.0 / (window + 1)
    good = np.flatnonzero(valid)
    before = np.searchsorted(good, targets)  # how many valid values precede each target
    lags = np.arange(1, window + 1)
    idx = before[:, None] - lags[None, :]  # positions in `good`, latest first
    present = idx >= 0
    weights = (1 - alpha) ** (lags - 1)[None, :] * present
    gathered = values[good[np.maximum(idx, 0)]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ema = (weights * gathered).sum(axis=1) / weights.sum(axis=1)
    none = before == 0
    ema[none] = values[good[0]]
    return ema


def _seasonal_at(comp: pd.DataFrame | None, ts_us: np.ndarray, sid: str) -> np.ndarray:
    """``trend + seasonal`` of the components at ``ts_us`` (NaN where absent)."""
    out = np.full(ts_us.size, np.nan)
    if comp is None or not len(comp):
        return out
    missing = [c for c in ("ts", "trend", "seasonal") if c not in comp.columns]
    if missing:
        raise PipelineError(f"{sid}: components frame lacks column(s) {', '.join(missing)}")
    comp_us = pd.to_datetime(comp["ts"], utc=True).dt.as_unit("us").astype("int64").to_numpy()
    fitted = comp["trend"].to_numpy(dtype=float) + comp["seasonal"].to_numpy(dtype=float)
    order = np.argsort(comp_us, kind="stable")
    comp_us, fitted = comp_us[order], fitted[order]
    pos = np.clip(np.searchsorted(comp_us, ts_us), 0, max(comp_us.size - 1, 0))
    hit = comp_us[pos] == ts_us
    out[hit] = fitted[pos[hit]]
    return out
