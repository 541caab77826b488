"""The local engine: per-series functions inline or in a pool of worker processes.

Small inputs run inline (a process pool costs more than it saves below a few hundred
thousand points); larger ones are cut into contiguous chunks of series of about equal row
counts and sent to a :class:`~concurrent.futures.ProcessPoolExecutor` started with ``spawn``
(safe next to threads, the same on every OS). The pool is created on first use and kept
until :meth:`LocalEngine.close`, so one pipeline run (all its tasks and chains) reuses the
same workers. :meth:`LocalEngine.split` tells the pipeline runner how to cut series into
``workers · chunks_per_worker`` chunks, each sent to a worker once through :meth:`map_inputs`.
An exception in one series, or a worker process dying, becomes a failure of the series (or
input) concerned; the others' results are kept.

>>> with LocalEngine(workers=1) as engine:
...     results = engine.map_inputs(abs, [-1.5, "x"], {})
>>> results[0], type(results[1]).__name__
(1.5, 'CallFailure')
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import pandas as pd
import pyarrow as pa

from sparkhu.engine.base import (
    CallFailure,
    Engine,
    Failure,
    MapResult,
    Outcome,
    SeriesFn,
    assemble,
    balanced_edges,
    call_inputs,
    call_series,
    describe,
    pickle_task,
    split_series,
)
from sparkhu.errors import PipelineError

log = logging.getLogger(__name__)


class LocalEngine(Engine):
    """Map series functions on this machine.

    ``workers``: pool size, 0 = one per core; 1 always runs inline. ``min_rows_for_pool``:
    inputs with fewer points run inline. ``chunks_per_worker``: how many chunks each worker
    gets (more balances uneven series better, fewer saves transfer overhead).
    After each call, ``last_mode`` says whether it ran ``"inline"`` or in the ``"pool"``.
    """

    def __init__(
        self,
        workers: int = 0,
        *,
        min_rows_for_pool: int = 200_000,
        chunks_per_worker: int = 4,
        start_method: str = "spawn",
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise PipelineError(f"workers must be an integer >= 0 (0 = one per core), got {workers!r}")
        if chunks_per_worker < 1:
            raise PipelineError(f"chunks_per_worker must be >= 1, got {chunks_per_worker}")
        self.workers = workers or os.cpu_count() or 1
        self.min_rows_for_pool = min_rows_for_pool
        self.chunks_per_worker = chunks_per_worker
        self.start_method = start_method
        self.last_mode = ""
        self._pool: ProcessPoolExecutor | None = None

    def map_series(self, fn: SeriesFn, table: pa.Table, **kwargs: Any) -> MapResult:
        """See :meth:`Engine.map_series`."""
        fn_bytes, kwargs_bytes = pickle_task(fn, kwargs)
        groups = split_series(table)
        rows = sum(len(frame) for _, frame in groups)
        if self.workers <= 1 or len(groups) < 2 or rows < self.min_rows_for_pool:
            self.last_mode = "inline"
            outcomes = call_series(fn, kwargs, groups)
        else:
            self.last_mode = "pool"
            outcomes = self._run_pool(fn_bytes, kwargs_bytes, groups)
        failures: list[Failure] = [(sid, err) for sid, _, err in outcomes if err is not None]
        for sid, err in failures:
            log.warning("series %s failed in %s: %s", sid, getattr(fn, "__qualname__", fn), err)
        parts = [(sid, frame) for sid, frame, err in outcomes if frame is not None and err is None]
        try:
            result = assemble(parts)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise PipelineError(
                f"results of {getattr(fn, '__qualname__', fn)} cannot be combined into one table "
                f"({exc}); return frames with the same columns and types for every series"
            ) from exc
        return MapResult(result, failures)

    def map_inputs(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Any],
        params: Mapping[str, Any],
        *,
        sizes: Sequence[int] | None = None,
    ) -> list[Any]:
        """See :meth:`Engine.map_inputs`: inline below ``min_rows_for_pool`` rows, else chunks in the pool."""
        fn_bytes, params_bytes = pickle_task(fn, dict(params))
        weights = list(sizes) if sizes is not None else [1] * len(inputs)
        if self.workers <= 1 or len(inputs) < 2 or sum(weights) < self.min_rows_for_pool:
            self.last_mode = "inline"
            return call_inputs(fn, dict(params), inputs)
        self.last_mode = "pool"
        edges = balanced_edges(weights, self.workers * self.chunks_per_worker)
        pool = self._executor()
        futures = [
            pool.submit(_run_inputs, fn_bytes, params_bytes, list(inputs[lo:hi]))
            for lo, hi in itertools.pairwise(edges)
        ]
        out: list[Any] = []
        broken = False
        for (lo, hi), future in zip(itertools.pairwise(edges), futures, strict=True):
            try:
                out.extend(future.result())
            except BrokenProcessPool as exc:
                broken = True
                out.extend([CallFailure(f"worker process died ({exc or 'terminated abruptly'})")] * (hi - lo))
        if broken:
            self.close()
        return out

    def split(self, sizes: Sequence[int]) -> list[tuple[int, int]]:
        """See :meth:`Engine.split`: one run below ``min_rows_for_pool`` rows (or with one worker),
        else ``workers · chunks_per_worker`` runs of about equal rows."""
        if not len(sizes):
            return []
        if self.workers <= 1 or len(sizes) < 2 or sum(sizes) < self.min_rows_for_pool:
            return [(0, len(sizes))]
        return list(itertools.pairwise(balanced_edges(sizes, self.workers * self.chunks_per_worker)))

    def _run_pool(
        self, fn_bytes: bytes, kwargs_bytes: bytes, groups: list[tuple[str, pd.DataFrame]]
    ) -> list[Outcome]:
        chunks = _chunk(groups, self.workers * self.chunks_per_worker)
        pool = self._executor()
        futures: list[Future[list[Outcome]]] = [
            pool.submit(_run_chunk, fn_bytes, kwargs_bytes, chunk) for chunk in chunks
        ]
        outcomes: list[Outcome] = []
        broken = False
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                outcomes.extend(future.result())
            except BrokenProcessPool as exc:
                broken = True
                reason = f"worker process died ({exc or 'terminated abruptly'})"
                outcomes.extend((sid, None, reason) for sid, _ in chunk)
        if broken:
            self.close()
        return outcomes

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=get_context(self.start_method)
            )
        return self._pool

    def close(self) -> None:
        """Shut the worker pool down (a later call starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"LocalEngine(workers={self.workers})"


def _chunk(groups: list[tuple[str, pd.DataFrame]], n: int) -> list[list[tuple[str, pd.DataFrame]]]:
    """Contiguous runs of series with about equal row counts (at most ``n`` runs)."""
    edges = balanced_edges([len(frame) for _, frame in groups], n)
    return [groups[lo:hi] for lo, hi in itertools.pairwise(edges)]


def _run_inputs(fn_bytes: bytes, params_bytes: bytes, inputs: list[Any]) -> list[Any]:
    """Worker entry point of :meth:`LocalEngine.map_inputs`."""
    try:
        fn = pickle.loads(fn_bytes)
        params = pickle.loads(params_bytes)
    except Exception as exc:
        reason = (
            f"cannot load the task function in a worker process ({describe(exc)}); "
            "define it in a module importable from a fresh interpreter"
        )
        return [CallFailure(reason)] * len(inputs)
    return call_inputs(fn, params, inputs)


def _run_chunk(fn_bytes: bytes, kwargs_bytes: bytes, groups: list[tuple[str, pd.DataFrame]]) -> list[Outcome]:
    """Worker entry point: unpickle the task, then :func:`~sparkhu.engine.base.call_series`."""
    try:
        fn = pickle.loads(fn_bytes)
        kwargs = pickle.loads(kwargs_bytes)
    except Exception as exc:
        reason = (
            f"cannot load the series function in a worker process ({describe(exc)}); "
            "define it in a module importable from a fresh interpreter"
        )
        return [(sid, None, reason) for sid, _ in groups]
    return call_series(fn, kwargs, groups)
