"""The local engine: per-series functions inline or in a pool of worker processes.

Small inputs run inline (a process pool costs more than it saves below a few hundred
thousand points); larger ones are cut into contiguous chunks of series of about equal row
counts and sent to a :class:`~concurrent.futures.ProcessPoolExecutor` started with ``spawn``
(safe next to threads, the same on every OS). The pool is created on first use and kept
until :meth:`LocalEngine.close`. An exception in one series, or a worker process dying,
becomes a failure of the series concerned; the others' results are kept.

>>> from sparkhu.series import points
>>> from sparkhu.pipeline.tasks.resample import dedup_and_resample
>>> t = points("a/b/c", [0, 0, 61_000_000], [1.0, 2.0, 3.0])
>>> with LocalEngine(workers=1) as engine:
...     table, failures = engine.map_series(dedup_and_resample, t, period_s=60)
>>> table.column("value").to_pylist(), failures
([2.0, 3.0], [])
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import traceback
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkhu.engine.base import Engine, Failure, MapResult, SeriesFn, assemble, pickle_task, split_series
from sparkhu.errors import PipelineError

log = logging.getLogger(__name__)

Outcome = tuple[str, pd.DataFrame | None, str | None]


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
        groups = list(split_series(table))
        rows = sum(len(frame) for _, frame in groups)
        if self.workers <= 1 or len(groups) < 2 or rows < self.min_rows_for_pool:
            self.last_mode = "inline"
            outcomes = _call_each(fn, kwargs, groups)
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
    sizes = np.array([len(frame) for _, frame in groups], dtype="float64")
    middle = (np.cumsum(sizes) - sizes / 2) / max(sizes.sum(), 1.0)  # where each series sits, 0..1
    labels = np.minimum((middle * n).astype(int), n - 1)
    cuts = np.flatnonzero(np.diff(labels)) + 1
    edges = [0, *cuts.tolist(), len(groups)]
    return [groups[lo:hi] for lo, hi in itertools.pairwise(edges) if hi > lo]


def _call_each(
    fn: SeriesFn, kwargs: dict[str, Any], groups: Iterable[tuple[str, pd.DataFrame]]
) -> list[Outcome]:
    """Call ``fn`` per series, turning exceptions and bad return values into error messages."""
    outcomes: list[Outcome] = []
    for sid, frame in groups:
        try:
            result = fn(frame, sid, **kwargs)
        except Exception as exc:
            outcomes.append((sid, None, _describe(exc)))
            continue
        if not isinstance(result, pd.DataFrame):
            got = type(result).__name__
            name = getattr(fn, "__qualname__", fn)
            outcomes.append((sid, None, f"{name} returned {got}, expected a pandas DataFrame"))
            continue
        outcomes.append((sid, result, None))
    return outcomes


def _run_chunk(fn_bytes: bytes, kwargs_bytes: bytes, groups: list[tuple[str, pd.DataFrame]]) -> list[Outcome]:
    """Worker entry point: unpickle the task, then :func:`_call_each`."""
    try:
        fn = pickle.loads(fn_bytes)
        kwargs = pickle.loads(kwargs_bytes)
    except Exception as exc:
        reason = (
            f"cannot load the series function in a worker process ({_describe(exc)}); "
            "define it in a module importable from a fresh interpreter"
        )
        return [(sid, None, reason) for sid, _ in groups]
    return _call_each(fn, kwargs, groups)


def _describe(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {os.path.basename(last.filename)}:{last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"
