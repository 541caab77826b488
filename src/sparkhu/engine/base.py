"""The engine contract: map a per-series function over a table of points.

A series function takes one series as a pandas frame (columns ``ts``: datetime64[us, UTC]
and ``value``: float64, sorted by ``ts``), the series id and keyword arguments, and returns
a frame. :meth:`Engine.map_series` calls it for every series of a
:data:`~sparkhu.series.POINT_SCHEMA` table and concatenates the results into one Arrow table
with a ``series_id`` column first. A failing series never stops the others: its error comes
back in ``failures``. The pipeline runner uses the generic pair instead: :meth:`Engine.split`
(how to cut the series into chunks) and :meth:`Engine.map_inputs` (one call per chunk,
results in order, a failed call a :class:`CallFailure`). Implementations differ only in
where the calls run: :mod:`sparkhu.engine.local` (inline or a process pool) and
:mod:`sparkhu.engine.spark` (``applyInPandas``); both cut work with :func:`balanced_edges`
and call series functions with :func:`call_series`.

Because a function may run in another process, it must be picklable by reference: a
function defined at the top level of an importable module, not a lambda or a closure.
:func:`pickle_task` checks that up front and raises :class:`~sparkhu.errors.PipelineError`.

>>> from sparkhu.series import points
>>> t = points(["a/b/c", "a/b/c", "x/y/z"], [0, 60_000_000, 0], [1.0, 2.0, 5.0])
>>> [(sid, frame["value"].tolist()) for sid, frame in split_series(t)]
[('a/b/c', [1.0, 2.0]), ('x/y/z', [5.0])]
"""

from __future__ import annotations

import os
import pickle
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import InputError, PipelineError
from sparkhu.series import POINT_SCHEMA, SERIES_ID_TYPE, conform, series_frames

SeriesFn = Callable[..., pd.DataFrame]
"""``fn(frame, series_id, **kwargs) -> pd.DataFrame``."""

Failure = tuple[str, str]
"""``(series_id, error message)``."""

Outcome = tuple[str, pd.DataFrame | None, str | None]
"""``(series_id, result frame, error message)`` of one series function call."""


@dataclass(frozen=True)
class CallFailure:
    """What :meth:`Engine.map_inputs` returns for an input whose call raised (or whose worker died)."""

    error: str


class MapResult(NamedTuple):
    """What :meth:`Engine.map_series` returns; unpacks as ``table, failures``."""

    table: pa.Table
    failures: list[Failure]


class Engine(ABC):
    """Runs per-series functions over tables of points. Use as a context manager or ``close()``."""

    @abstractmethod
    def map_series(self, fn: SeriesFn, table: pa.Table, **kwargs: Any) -> MapResult:
        """Call ``fn(frame, series_id, **kwargs)`` for every series of ``table``; concatenate results.

        Raises :class:`PipelineError` when ``fn`` or ``kwargs`` cannot be pickled or ``table``
        is not a table of points; errors inside ``fn`` are returned per series as failures.
        """

    def map_inputs(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Any],
        params: Mapping[str, Any],
        *,
        sizes: Sequence[int] | None = None,
    ) -> list[Any]:
        """``[fn(inp, **params) for inp in inputs]``, an exception becoming a :class:`CallFailure`.

        The generic twin of :meth:`map_series` for the pipeline runner, which calls it with one
        input per chunk of series (the runs of :meth:`split`): a
        :class:`~sparkhu.pipeline.chain_worker.ChainChunk` holding the chunk's input tables as Arrow
        IPC bytes, ``fn`` = :func:`~sparkhu.pipeline.chain_worker.run_chain` running every per-series
        task of a DAG stage on them and returning one compact result per chunk. Each input is
        one call (an engine may group several inputs on one worker but never splits one);
        ``sizes`` (rows per input) lets it balance its workers. Inputs and results must be
        picklable; results keep the inputs' order. This default runs inline; engines with
        workers override it (a pool kept for the engine's life, not started per call).
        """
        pickle_task(fn, dict(params))
        return call_inputs(fn, dict(params), inputs)

    def split(self, sizes: Sequence[int]) -> list[tuple[int, int]]:
        """Cut items of ``sizes`` (rows per series) into contiguous ``[lo, hi)`` runs, one call each.

        The pipeline runner builds one payload per run (a chunk of whole series) and maps a
        function over the payloads with :meth:`map_inputs`; an engine returns as many runs of
        about equal rows as keep its workers busy. This default (no workers) returns one run.
        """
        return [(0, len(sizes))] if len(sizes) else []

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release workers (no-op unless the engine holds some)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def pickle_task(fn: SeriesFn, kwargs: dict[str, Any]) -> tuple[bytes, bytes]:
    """Pickle ``fn`` and ``kwargs`` for worker processes; :class:`PipelineError` if impossible."""
    name = getattr(fn, "__qualname__", repr(fn))
    if not callable(fn):
        raise PipelineError(f"{name!r} is not callable; pass fn(frame, series_id, **kwargs)")
    try:
        fn_bytes = pickle.dumps(fn)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise PipelineError(
            f"series function {name} cannot be sent to worker processes ({exc}); define it at "
            "the top level of an importable module (not a lambda, closure or nested function)"
        ) from exc
    try:
        kwargs_bytes = pickle.dumps(kwargs)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise PipelineError(
            f"arguments of series function {name} cannot be pickled ({exc}); "
            "pass plain values (numbers, strings, lists, dicts)"
        ) from exc
    return fn_bytes, kwargs_bytes


def call_inputs(fn: Callable[..., Any], params: dict[str, Any], inputs: Iterable[Any]) -> list[Any]:
    """``fn(inp, **params)`` per input; an exception becomes a :class:`CallFailure` naming where it arose."""
    out: list[Any] = []
    for inp in inputs:
        try:
            out.append(fn(inp, **params))
        except Exception as exc:
            out.append(CallFailure(describe(exc)))
    return out


def describe(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame of ``exc``."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {os.path.basename(last.filename)}:{last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def split_series(table: pa.Table) -> list[tuple[str, pd.DataFrame]]:
    """``(series_id, frame)`` per series of a points table, series and time sorted.

    The frames a series function receives (:func:`~sparkhu.series.series_frames` of the
    ``ts`` and ``value`` columns); :class:`PipelineError` when ``table`` is not points.
    """
    if not isinstance(table, pa.Table):
        raise PipelineError(f"expected a pyarrow.Table of points, got {type(table).__name__}")
    try:
        return list(series_frames(conform(table), ["ts", "value"]))
    except (InputError, pa.ArrowException, TypeError, ValueError) as exc:
        raise PipelineError(f"table is not a table of points: {exc}") from exc


def call_series(
    fn: SeriesFn, kwargs: dict[str, Any], groups: Iterable[tuple[str, pd.DataFrame]]
) -> list[Outcome]:
    """Call ``fn`` per series, turning exceptions and bad return values into error messages."""
    outcomes: list[Outcome] = []
    for sid, frame in groups:
        try:
            result = fn(frame, sid, **kwargs)
        except Exception as exc:
            outcomes.append((sid, None, describe(exc)))
            continue
        if not isinstance(result, pd.DataFrame):
            got = type(result).__name__
            name = getattr(fn, "__qualname__", fn)
            outcomes.append((sid, None, f"{name} returned {got}, expected a pandas DataFrame"))
            continue
        outcomes.append((sid, result, None))
    return outcomes


def balanced_edges(sizes: Sequence[int], n: int) -> list[int]:
    """Boundaries of at most ``n`` contiguous, non-empty runs of ``sizes`` of about equal total size.

    >>> balanced_edges([5, 1, 1, 1, 1, 1], 2)
    [0, 1, 6]
    """
    weights = np.asarray(sizes, dtype="float64")
    middle = (np.cumsum(weights) - weights / 2) / max(weights.sum(), 1.0)  # where each item sits, 0..1
    labels = np.minimum((middle * n).astype(int), n - 1)
    cuts = np.flatnonzero(np.diff(labels)) + 1
    return [0, *cuts.tolist(), len(weights)]


def assemble(parts: list[tuple[str, pd.DataFrame]]) -> pa.Table:
    """One table from per-series result frames, with ``series_id`` (dictionary string) first.

    A result of exactly ``ts`` and ``value`` comes back as :data:`POINT_SCHEMA`.
    """
    frames = [frame.assign(series_id=sid) for sid, frame in parts if len(frame.columns) or len(frame)]
    if not frames:
        return POINT_SCHEMA.empty_table()
    combined = pd.concat(frames, ignore_index=True)
    if combined.empty and set(combined.columns) == set(POINT_SCHEMA.names):
        return POINT_SCHEMA.empty_table()
    columns = ["series_id", *[c for c in combined.columns if c != "series_id"]]
    table = pa.Table.from_pandas(combined[columns], preserve_index=False)
    if set(table.column_names) == set(POINT_SCHEMA.names):
        return conform(table)
    return table.set_column(0, "series_id", pc.dictionary_encode(table.column(0)).cast(SERIES_ID_TYPE))
