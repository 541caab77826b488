"""Multivariate correlation: the most related pairs of series, with their lag.

:func:`correlate` (a ``scope="all"`` task) takes every series' points at once:

1. **Alignment**: each series is averaged into bins of ``freq_s`` seconds (default: the
   coarsest sampling period among the series, at least 60 s), giving a series × bin matrix
   with empty bins missing.
2. **Screening** (when there are more pairs than ``candidates``): the standardised matrix
   is block-averaged so that a few coarse lags cover ``±max_lag``; the absolute Pearson
   correlations of all pairs at those coarse lags are matrix products (BLAS), and the
   ``candidates`` pairs with the largest keep on to the exact stage. 1,000 series make
   half a million pairs: this is what keeps the task in seconds.
3. **Exact lagged Pearson** for the candidate pairs at every lag in ``±max_lag`` bins, over
   the bins both series observed (pairwise-complete), from six FFT cross-correlations of
   the values, their squares and the observation masks.
4. The ``top`` pairs by |Pearson| at their best lag get **Spearman**'s rank correlation at
   that lag (exact, on the overlapping bins).

Output ``pairs``: ``ts`` (``start``, else the first instant of the last day in the data),
``series_a`` < ``series_b``, ``lag`` in seconds (positive: ``series_b`` follows
``series_a``, i.e. ``b(t + lag)`` goes with ``a(t)``), ``pearson``, ``spearman``, ``n`` (bins
in the overlap). The report lists the same pairs.

>>> import numpy as np, pandas as pd
>>> ts = pd.date_range("2024-01-01", periods=500, freq="min", tz="UTC").as_unit("us")
>>> a = np.random.default_rng(1).normal(size=500).cumsum()
>>> points = pd.concat([pd.DataFrame({"series_id": "s/a/x", "ts": ts, "value": a}),
...                     pd.DataFrame({"series_id": "s/b/x", "ts": ts, "value": np.roll(a, 3)})])
>>> row = correlate({"points": points}, max_lag=5).frames["pairs"].iloc[0]
>>> row["series_a"], row["series_b"], int(row["lag"]), bool(row["pearson"] > 0.99)
('s/a/x', 's/b/x', 180, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy.stats import rankdata

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskOutput
from sparkhu.timeaxis import US_PER_S

MIN_FREQ_S = 60
_CHUNK = 16  # candidate pairs per batched FFT
_MAX_CELLS = 200_000_000  # series × bins


def correlate(
    frames: dict[str, pd.DataFrame],
    *,
    freq_s: float | None = None,
    max_lag: int | None = None,
    top: int = 20,
    candidates: int | None = None,
    min_overlap: int = 30,
    start: pd.Timestamp | str | None = None,
) -> TaskOutput:
    """The ``top`` most correlated pairs among the series of ``frames["points"]``; see the module doc.

    ``max_lag`` is in bins of ``freq_s`` (default: one hour's worth, at most a tenth of the
    data); ``candidates`` (default ``max(5·top, 100)``) bounds the pairs that reach the exact stage.
    """
    points = frames.get("points") if isinstance(frames, dict) else None
    if points is None:
        raise PipelineError(f"correlate needs a 'points' frame, got {sorted(frames) if frames else frames!r}")
    missing = [c for c in ("series_id", "ts", "value") if c not in getattr(points, "columns", ())]
    if missing:
        raise PipelineError(f"correlate: points frame lacks column(s) {', '.join(missing)}")
    for name, value, low in (("top", top, 1), ("min_overlap", min_overlap, 3)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PipelineError(f"correlate needs an integer {name} >= {low}, got {value!r}")
    if max_lag is not None and (isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 0):
        raise PipelineError(f"correlate needs an integer max_lag >= 0 (in bins), got {max_lag!r}")
    if freq_s is not None and (
        isinstance(freq_s, bool) or not isinstance(freq_s, int | float) or freq_s <= 0
    ):
        raise PipelineError(f"correlate needs freq_s > 0 seconds, got {freq_s!r}")
    try:
        ts_us = pd.to_datetime(points["ts"], utc=True).dt.as_unit("us").astype("int64").to_numpy()
        values = points["value"].to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"correlate: ts must be timestamps and value numbers: {exc}") from exc
    keep = np.isfinite(values)
    codes, names = pd.factorize(points["series_id"].astype(str).to_numpy()[keep], sort=True)
    ts_us, values = ts_us[keep], values[keep]
    empty = TaskOutput(frames={"pairs": _frame([], None)}, report={"series": len(names), "pairs": []})
    if len(names) < 2:
        return TaskOutput(skipped=f"{len(names)} series with data: correlation needs two")

    if freq_s is None:
        freq_s = max(MIN_FREQ_S, _coarsest_period_s(codes, ts_us))
    freq_us = round(freq_s * US_PER_S)
    bins = ts_us // freq_us
    b0 = int(bins.min())
    size = int(bins.max()) - b0 + 1
    if size * len(names) > _MAX_CELLS:
        raise PipelineError(
            f"correlate: {len(names)} series × {size} bins of {freq_s:g} s exceed {_MAX_CELLS} cells; "
            "pass a larger freq_s"
        )
    cell = codes.astype(np.int64) * size + (bins - b0)
    total = np.bincount(cell, weights=values, minlength=len(names) * size).reshape(len(names), size)
    count = np.bincount(cell, minlength=len(names) * size).reshape(len(names), size)
    observed = count > 0
    matrix = np.divide(total, count, out=np.zeros_like(total), where=observed)

    nobs = observed.sum(axis=1)
    mean = matrix.sum(axis=1) / np.maximum(nobs, 1)
    centred = np.where(observed, matrix - mean[:, None], 0.0)
    std = np.sqrt((centred**2).sum(axis=1) / np.maximum(nobs, 1))
    usable = np.flatnonzero((nobs >= min_overlap) & (std > 0))
    excluded = [str(names[i]) for i in range(len(names)) if i not in set(usable.tolist())]
    report: dict[str, Any] = {
        "series": len(names),
        "freq_s": float(freq_s),
        "bins": size,
        "excluded": excluded,
    }
    if usable.size < 2:
        empty.report.update(report)
        return empty
    lag = max_lag if max_lag is not None else max(0, min(round(3600 / freq_s), size // 10))
    want = candidates if candidates is not None else max(5 * top, 100)
    z = centred[usable] / std[usable, None]
    pairs = _screen(z, lag, want)
    report.update(max_lag_bins=lag, pairs_total=usable.size * (usable.size - 1) // 2, pairs_exact=len(pairs))

    best = _exact(centred[usable], observed[usable], pairs, lag, min_overlap)
    order = np.argsort(-np.abs(np.nan_to_num(best[:, 0])), kind="stable")[:top]
    rows = []
    for k in order:
        r, best_lag, n = best[k]
        if not np.isfinite(r):
            continue
        i, j = pairs[k]
        rho = _spearman(
            matrix[usable[i]], observed[usable[i]], matrix[usable[j]], observed[usable[j]], int(best_lag)
        )
        rows.append(
            (str(names[usable[i]]), str(names[usable[j]]), int(best_lag) * freq_s, float(r), rho, int(n))
        )
    if start is None:
        at = pd.Timestamp(int(ts_us.max()), unit="us", tz="UTC").floor("D")
    else:
        at = pd.Timestamp(start)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    frame = _frame(rows, at)
    report["pairs"] = [
        {"series_a": a, "series_b": b, "lag_s": lg, "pearson": round(p, 4), "spearman": round(s, 4), "n": n}
        for a, b, lg, p, s, n in rows
    ]
    return TaskOutput(frames={"pairs": frame}, report=report)


def _screen(z: np.ndarray, max_lag: int, want: int) -> np.ndarray:
    """Indices (i < j) of the ``want`` pairs with the largest coarse max-|r| over lags."""
    m, size = z.shape
    iu, ju = np.triu_indices(m, k=1)
    if iu.size <= want:
        return np.stack([iu, ju], axis=1)
    block = max(1, -(-max_lag // 4))
    coarse_n = size // block
    zc = z[:, : coarse_n * block].reshape(m, coarse_n, block).mean(axis=2).astype(np.float32)
    zc -= zc.mean(axis=1, keepdims=True)
    norm = np.sqrt((zc**2).sum(axis=1, keepdims=True))
    zc /= np.where(norm > 0, norm, 1.0)
    coarse_lag = min(-(-max_lag // block), coarse_n - 2) if max_lag else 0
    score = np.abs(zc @ zc.T)
    for lag in range(1, coarse_lag + 1):
        c = np.abs(zc[:, :-lag] @ zc[:, lag:].T)
        np.maximum(score, np.maximum(c, c.T), out=score)
    flat = score[iu, ju]
    pick = np.argpartition(-flat, want - 1)[:want]
    return np.stack([iu[pick], ju[pick]], axis=1)


def _exact(
    centred: np.ndarray, observed: np.ndarray, pairs: np.ndarray, max_lag: int, min_overlap: int
) -> np.ndarray:
    """Per pair: (Pearson, lag in bins, overlap) at the lag of largest |Pearson| (pairwise-complete)."""
    size = centred.shape[1]
    nfft = sfft.next_fast_len(size + max_lag + 1, real=True)
    lags = np.r_[0 : max_lag + 1, -max_lag:0] if max_lag else np.array([0])
    cols = lags % nfft
    series = np.unique(pairs)
    where = {s: k for k, s in enumerate(series.tolist())}
    x0 = np.where(observed[series], centred[series], 0.0)
    mask = observed[series].astype(float)
    fx, fxx, fm = (sfft.rfft(a, nfft, axis=1) for a in (x0, x0 * x0, mask))
    out = np.full((len(pairs), 3), np.nan)
    for lo in range(0, len(pairs), _CHUNK):
        chunk = pairs[lo : lo + _CHUNK]
        a = np.array([where[i] for i in chunk[:, 0]])
        b = np.array([where[j] for j in chunk[:, 1]])

        def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return sfft.irfft(np.conj(u) * v, nfft, axis=1)[:, cols]  # Σ_t u(t) v(t + lag)

        n = np.rint(cross(fm[a], fm[b]))
        sa, sb = cross(fx[a], fm[b]), cross(fm[a], fx[b])
        saa, sbb, sab = cross(fxx[a], fm[b]), cross(fm[a], fxx[b]), cross(fx[a], fx[b])
        with np.errstate(invalid="ignore", divide="ignore"):
            den = np.sqrt(np.clip(n * saa - sa**2, 0, None) * np.clip(n * sbb - sb**2, 0, None))
            r = np.where((n >= min_overlap) & (den > 0), (n * sab - sa * sb) / den, np.nan)
        r = np.clip(r, -1.0, 1.0)
        absr = np.where(np.isnan(r), -1.0, np.abs(r))
        k = np.argmax(absr, axis=1)
        rows = np.arange(len(chunk))
        out[lo : lo + len(chunk)] = np.stack([r[rows, k], lags[k], n[rows, k]], axis=1)
    return out


def _spearman(a: np.ndarray, ma: np.ndarray, b: np.ndarray, mb: np.ndarray, lag: int) -> float:
    """Spearman's ρ of ``a(t)`` and ``b(t + lag)`` over the bins both observed."""
    if lag >= 0:
        a, ma, b, mb = a[: a.size - lag], ma[: ma.size - lag], b[lag:], mb[lag:]
    else:
        a, ma, b, mb = a[-lag:], ma[-lag:], b[: b.size + lag], mb[: mb.size + lag]
    both = ma & mb
    ra, rb = rankdata(a[both]), rankdata(b[both])
    if ra.size < 3 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _coarsest_period_s(codes: np.ndarray, ts_us: np.ndarray) -> float:
    """The largest of the series' median sampling intervals, in whole seconds."""
    order = np.lexsort((ts_us, codes))
    c, t = codes[order], ts_us[order]
    same = c[1:] == c[:-1]
    diffs = pd.Series(np.diff(t)[same] / US_PER_S)
    if diffs.empty:
        return float(MIN_FREQ_S)
    medians = diffs[diffs > 0].groupby(c[1:][same][diffs.to_numpy() > 0]).median()
    return float(np.ceil(medians.max())) if len(medians) else float(MIN_FREQ_S)


def _frame(rows: list[tuple[str, str, float, float, float, int]], at: pd.Timestamp | None) -> pd.DataFrame:
    a, b, lag, p, s, n = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [], [], [], [])
    ts = (
        pd.DatetimeIndex([at] * len(rows), tz="UTC").as_unit("us") if rows else pd.DatetimeIndex([], tz="UTC")
    )
    return pd.DataFrame(
        {
            "ts": ts.as_unit("us"),
            "series_a": pd.Series(a, dtype=object),
            "series_b": pd.Series(b, dtype=object),
            "lag": np.asarray(lag, dtype=np.int64),
            "pearson": np.asarray(p, dtype=float),
            "spearman": np.asarray(s, dtype=float),
            "n": np.asarray(n, dtype=np.int64),
        }
    )
