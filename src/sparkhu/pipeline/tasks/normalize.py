"""Normalisation (min-max or z-score) with the parameters kept for the inverse.

The parameters are computed from every point the task receives (the interval plus the
task's look-back, so a longer look-back gives steadier parameters) and returned as the
series metadata ``normalization``; :func:`inverse` maps normalised values (forecasts, say)
back to the original unit.

>>> import pandas as pd
>>> from sparkhu.pipeline.base import SeriesMeta, TaskInput
>>> ts = pd.date_range("2024-01-01", periods=5, freq="min", tz="UTC").as_unit("us")
>>> frame = pd.DataFrame({"ts": ts, "value": [10.0, 20, 30, 40, 50]})
>>> out = normalize(TaskInput("a/b/c", {"points": frame}, SeriesMeta("a/b/c"), ts[0], ts[-1]))
>>> out.frames["points"]["value"].tolist(), out.metadata["normalization"]
([0.0, 0.25, 0.5, 0.75, 1.0], {'method': 'minmax', 'min': 10.0, 'max': 50.0})
>>> inverse([0.5, 1.0], out.metadata["normalization"]).tolist()
[30.0, 50.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import TaskInput, TaskOutput
from sparkhu.pipeline.tasks.decomposition import point_arrays
from sparkhu.timeaxis import from_us_index

METHODS = ("minmax", "zscore")
MIN_POINTS = 5


def normalize(inp: TaskInput, *, method: str = "minmax") -> TaskOutput:
    """Scale ``points`` to [0, 1] (``minmax``) or to mean 0, standard deviation 1 (``zscore``).

    The standard deviation is the population one (ddof = 0). Metadata ``normalization``:
    ``{"method": "minmax", "min": ..., "max": ...}`` or ``{"method": "zscore", "mean": ..., "std": ...}``.
    A constant series is skipped (it has no scale).
    """
    sid = inp.series_id
    if method not in METHODS:
        raise PipelineError(f"{sid}: normalize method must be one of {', '.join(METHODS)}, got {method!r}")
    frame = inp.frames.get("points")
    if frame is None:
        raise PipelineError(f"{sid}: normalize needs a 'points' frame, got {sorted(inp.frames)}")
    ts_us, values = point_arrays(frame, sid)
    finite = values[np.isfinite(values)]
    if finite.size < MIN_POINTS:
        return TaskOutput(skipped=f"{finite.size} finite point(s); normalisation needs {MIN_POINTS}")
    params: dict[str, Any]
    if method == "minmax":
        params = {"method": method, "min": float(finite.min()), "max": float(finite.max())}
    else:
        params = {"method": method, "mean": float(finite.mean()), "std": float(finite.std())}
    if _scale(params) == 0:
        return TaskOutput(skipped="constant series: no scale to normalise by")
    scaled = forward(values, params)
    ts = from_us_index(ts_us)
    points = pd.DataFrame({"ts": ts, "value": scaled})
    report = {"points": int(finite.size), **params}
    return TaskOutput(frames={"points": points}, report=report, metadata={"normalization": params})


def forward(values: Sequence[float] | np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Normalise ``values`` with parameters from :func:`normalize`."""
    return (np.asarray(values, dtype=float) - _offset(params)) / _scale(params)


def inverse(values: Sequence[float] | np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Map normalised ``values`` back to the original unit with parameters from :func:`normalize`."""
    return np.asarray(values, dtype=float) * _scale(params) + _offset(params)


def _offset(params: Mapping[str, Any]) -> float:
    return float(_get(params, "min" if _method(params) == "minmax" else "mean"))


def _scale(params: Mapping[str, Any]) -> float:
    if _method(params) == "minmax":
        return float(_get(params, "max")) - float(_get(params, "min"))
    return float(_get(params, "std"))


def _method(params: Mapping[str, Any]) -> str:
    method = params.get("method") if isinstance(params, Mapping) else None
    if method not in METHODS:
        raise PipelineError(
            f"normalisation parameters {params!r} lack a method in {', '.join(METHODS)}; "
            "pass the metadata 'normalization' that normalize() recorded"
        )
    return str(method)


def _get(params: Mapping[str, Any], key: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise PipelineError(f"normalisation parameters {params!r}: {key!r} must be a finite number")
    return float(value)
