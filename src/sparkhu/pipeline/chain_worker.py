"""The worker's side of chained execution: every per-series task of a chain run for a chunk of series.

The driver (:mod:`sparkhu.pipeline.chain_driver`) cuts the series of a chain into chunks
(:meth:`~sparkhu.engine.base.Engine.split`) and maps :func:`run_chain` over them with the
engine: a worker receives a
:class:`ChainChunk` (one Arrow IPC stream per dataset the chain reads: sources over
``[start - lookback, end)``, datasets the chain produces only over their history
``[start - lookback, start)``), runs the tasks in topological order for each series, keeping
each task's outputs for ``[start, end)`` in memory for the tasks after it (normalised as a
read from the lake would give them) and refreshing the series metadata from each task's
``metadata``, and returns one :class:`ChainResult` for the chunk: per task one Arrow table per
output, the quarantined rows, per-series results, metadata and the CPU seconds spent.

A series failing in a task does not stop its other tasks; the tasks downstream of the
failure are skipped for it (``upstream task 'x' failed``), and its state comes back in
``pending`` so that the driver can retry just the failed tasks (and their downstream).

>>> import pandas as pd
>>> from sparkhu.pipeline import examples
>>> from sparkhu.series import points
>>> tasks = (Task("double", examples.scale, {"points": "raw"}, {"points": "doubled"}, min_points=1),)
>>> spec = ChainSpec.of(tasks, upstream={"double": ()}, points={"raw": True, "doubled": True})
>>> t0 = pd.Timestamp("1970-01-01", tz="UTC")
>>> raw = points("a/b/c", [0, 60_000_000], [1.0, 2.0])
>>> chunk = ChainChunk.of(t0, t0 + pd.Timedelta(days=1), {"raw": raw}, {})
>>> result = run_chain(chunk, spec=spec)
>>> result.tables[("double", "points")]["value"].to_pylist()
[2.0, 4.0]
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkhu.engine.base import describe
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, Task, TaskInput, TaskOutput
from sparkhu.pipeline.dag import QUARANTINE_OUTPUT, written_frames
from sparkhu.pipeline.datasets import assemble
from sparkhu.pipeline.runs import SeriesResult
from sparkhu.series import POINT_SCHEMA, series_frames
from sparkhu.timeaxis import duration_us, from_us_array, from_us_index, to_us, to_us_array


@dataclass(frozen=True)
class ChainSpec:
    """The chain a worker runs: tasks in topological order and what it needs to know of datasets."""

    tasks: tuple[Task, ...]
    upstream: Mapping[str, tuple[str, ...]]
    """Task → the tasks of this chain it depends on (through data or metadata)."""
    points: Mapping[str, bool]
    """Dataset → whether it holds points (POINT_SCHEMA) — how its frames are normalised."""
    produced: Mapping[str, str] = field(default_factory=dict)
    """Dataset → the task of this chain that writes it."""
    consumed: frozenset[str] = frozenset()
    """Produced datasets a later task of the chain reads (kept in memory for it)."""

    @classmethod
    def of(
        cls, tasks: Sequence[Task], *, upstream: Mapping[str, Sequence[str]], points: Mapping[str, bool]
    ) -> ChainSpec:
        """A spec for ``tasks`` (in topological order); ``upstream`` is filtered to the chain."""
        names = {t.name for t in tasks}
        produced = {d: t.name for t in tasks for d in written_frames(t)}
        consumed = frozenset(d for t in tasks for d in t.inputs.values() if d in produced)
        ups = {t.name: tuple(u for u in upstream.get(t.name, ()) if u in names) for t in tasks}
        return cls(tuple(tasks), ups, dict(points), produced, consumed)


@dataclass
class SeriesState:
    """One series inside a chain: its read frames, this interval's outputs and each task's status."""

    series_id: str
    meta: SeriesMeta
    known: bool
    frames: dict[str, pd.DataFrame]
    produced: dict[str, pd.DataFrame] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    """Task → success / skipped / failed / blocked / absent (no input rows)."""


@dataclass
class ChainChunk:
    """One chunk of series for :func:`run_chain`: IPC-packed tables (or, on a retry, states)."""

    start: pd.Timestamp
    end: pd.Timestamp
    tables: dict[str, bytes]
    meta: dict[str, SeriesMeta]
    """Catalog metadata of the chunk's series the catalog knows (others get ``SeriesMeta(id)``)."""
    states: list[SeriesState] | None = None
    """Set on a retry: series resumed at their failed tasks."""
    templates: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Set on a retry: an empty frame per dataset, for a series without rows of it."""

    @classmethod
    def of(
        cls,
        start: pd.Timestamp,
        end: pd.Timestamp,
        tables: Mapping[str, pa.Table],
        meta: dict[str, SeriesMeta],
    ) -> ChainChunk:
        """Pack ``tables`` (compact IPC streams: slices do not drag their parent buffers along)."""
        return cls(start, end, {d: pack(t) for d, t in tables.items()}, meta)


@dataclass
class ChainResult:
    """What :func:`run_chain` returns for one chunk."""

    tables: dict[tuple[str, str], pa.Table] = field(default_factory=dict)
    """(task, output name) → rows of ``[start, end)`` of the chunk's series."""
    rejects: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Task → its ``rejects`` frames with a ``series_id`` column."""
    series: dict[str, list[SeriesResult]] = field(default_factory=dict)
    metadata: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Task → series → metadata fields it recorded."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Task → CPU seconds spent in its function and output handling."""
    rows_in: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Task → an error that concerns its whole chunk output (outputs that do not combine)."""
    pending: list[SeriesState] = field(default_factory=list)
    """Series with a failed task, to retry."""
    templates: dict[str, pd.DataFrame] = field(default_factory=dict)


def pack(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream (only the rows of a slice, unlike pickling it)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def unpack(data: bytes) -> pa.Table:
    """The table of an IPC stream written by :func:`pack`."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def run_chain(chunk: ChainChunk, *, spec: ChainSpec) -> ChainResult:
    """Run every task of ``spec`` for every series of ``chunk``; see the module docstring."""
    start_us, end_us = to_us(chunk.start), to_us(chunk.end)
    if chunk.states is not None:
        states = chunk.states
        templates = dict(chunk.templates)
    else:
        tables = {d: unpack(b) for d, b in chunk.tables.items()}
        templates = {
            d: t.schema.empty_table().drop_columns(["series_id"]).to_pandas() for d, t in tables.items()
        }
        grouped = {d: dict(series_frames(t)) for d, t in tables.items()}
        ids = sorted({sid for frames in grouped.values() for sid in frames})
        states = [
            SeriesState(
                sid,
                chunk.meta.get(sid) or SeriesMeta(sid),
                sid in chunk.meta,
                {d: frames[sid] for d, frames in grouped.items() if sid in frames},
            )
            for sid in ids
        ]
    first_pass = chunk.states is None
    result = ChainResult()
    parts: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    rejects: dict[str, list[pd.DataFrame]] = {}
    for task in spec.tasks:
        began = time.thread_time()
        results: list[SeriesResult] = []
        rows_in = 0
        for state in states:
            done = state.status.get(task.name)
            if done in ("success", "skipped", "absent"):
                continue
            failed_up = next(
                (u for u in spec.upstream[task.name] if state.status.get(u) in ("failed", "blocked")), None
            )
            frames = {name: _input(state, d, task, spec, start_us) for name, d in task.inputs.items()}
            primary = frames[next(iter(task.inputs))]
            rows_in += sum(len(f) for f in frames.values() if f is not None)
            if failed_up is not None:
                state.status[task.name] = "blocked"
                why = f"upstream task {failed_up!r} failed"
                results.append(SeriesResult(state.series_id, "skipped", _len(primary), error=why))
                continue
            if primary is None or not len(primary):
                state.status[task.name] = "absent"
                continue
            res = SeriesResult(state.series_id, "failed", len(primary))
            results.append(res)
            if len(primary) < task.min_points:
                state.status[task.name] = "skipped"
                res.status, res.error = "skipped", f"fewer than {task.min_points} points ({len(primary)})"
                continue
            empty = {
                name: templates.get(task.inputs[name], _EMPTY) for name, f in frames.items() if f is None
            }
            inp = TaskInput(
                state.series_id,
                {**frames, **empty},
                state.meta,
                chunk.start,
                chunk.end,
            )
            try:
                out = task.fn(inp, **dict(task.params))
                error = check_output(task, out)
                kept = _outputs(task, out, spec, start_us, end_us) if error is None else {}
            except Exception as exc:
                error = describe(exc)
            if error is not None:
                state.status[task.name] = "failed"
                res.error = error
                continue
            assert isinstance(out, TaskOutput)
            res.report = out.report
            if out.skipped:
                state.status[task.name] = "skipped"
                res.status, res.error = "skipped", out.skipped
                continue
            state.status[task.name] = "success"
            res.status = "success"
            for key, (frame, written) in kept.items():
                dataset = task.outputs[key]
                if key == QUARANTINE_OUTPUT:
                    if len(frame):
                        rejects.setdefault(task.name, []).append(frame.assign(series_id=state.series_id))
                    continue
                if dataset in spec.consumed:
                    state.produced[dataset] = frame
                    templates.setdefault(dataset, frame.iloc[:0])
                parts.setdefault((task.name, key), []).append((state.series_id, written))
                res.rows_out += _len(written)
            if out.metadata:
                result.metadata.setdefault(task.name, {})[state.series_id] = out.metadata
                if state.known:
                    state.meta = state.meta.updated(out.metadata)
        for key, dataset in task.outputs.items():
            if key == QUARANTINE_OUTPUT:
                continue
            try:
                result.tables[(task.name, key)] = _table(
                    parts.get((task.name, key), []), spec.points[dataset]
                )
            except PipelineError as exc:
                result.errors[task.name] = f"{task.name}: {exc}"
        if task.name in rejects:
            result.rejects[task.name] = pd.concat(rejects[task.name], ignore_index=True)
        result.series[task.name] = results
        result.seconds[task.name] = time.thread_time() - began
        if first_pass:
            result.rows_in[task.name] = rows_in
    result.pending = [s for s in states if any(v == "failed" for v in s.status.values())]
    result.templates = templates if result.pending else {}
    for state in result.pending:  # only what a retry needs
        state.status = {k: v for k, v in state.status.items() if v != "blocked"}
    return result


def check_output(task: Task, out: Any) -> str | None:
    """Why ``out`` is not an acceptable result of ``task`` (None when it is)."""
    if not isinstance(out, TaskOutput):
        return f"{task.name} returned {type(out).__name__}, expected TaskOutput"
    unknown = [k for k in out.frames if k not in task.outputs]
    if unknown:
        listed, known = ", ".join(unknown), ", ".join(task.outputs)
        return f"{task.name} returned frame(s) {listed} not among its outputs ({known})"
    bad = [k for k, f in out.frames.items() if not isinstance(f, pd.DataFrame)]
    if bad:
        return f"{task.name}: output {bad[0]!r} is a {type(out.frames[bad[0]]).__name__}, not a DataFrame"
    return None


_EMPTY = pd.DataFrame(
    {"ts": pd.Series([], dtype="datetime64[us, UTC]"), "value": pd.Series([], dtype="float64")}
)


def _input(
    state: SeriesState, dataset: str, task: Task, spec: ChainSpec, start_us: int
) -> pd.DataFrame | None:
    """The frame of ``dataset`` that ``task`` sees: its look-back of what was read, then the
    interval's output of the chain (for a dataset the chain produces)."""
    read = state.frames.get(dataset)
    if read is not None and len(read):
        lo = int(np.searchsorted(to_us_array(read["ts"]), start_us - duration_us(task.lookback), side="left"))
        if lo:
            read = read.iloc[lo:].reset_index(drop=True)
    if dataset not in spec.produced:
        return read
    current = state.produced.get(dataset)
    if current is None or not len(current):
        return read if read is not None and len(read) else current
    if read is None or not len(read):
        return current
    return pd.concat([read, current], ignore_index=True)


def _outputs(
    task: Task, out: TaskOutput, spec: ChainSpec, start_us: int, end_us: int
) -> dict[str, tuple[pd.DataFrame, Any]]:
    """Per output: (frame handed to later tasks, what goes into the written table), rows of [start, end).

    The frame handed on looks as a read of the written dataset would: ``ts`` as
    ``datetime64[us, UTC]``, a fresh index, and for points just ``ts`` and ``value`` (float64).
    """
    kept: dict[str, tuple[pd.DataFrame, Any]] = {}
    for key, frame in out.frames.items():
        if key == QUARANTINE_OUTPUT:
            kept[key] = (frame, None)
            continue
        columns = list(frame.columns)
        if "ts" not in columns:
            raise PipelineError(f"output {key!r} lacks a ts column (has {', '.join(map(str, columns))})")
        ts_col = frame["ts"]
        ts_ok = ts_col.dtype == _TS_DTYPE
        ts = ts_col.array.asi8 if ts_ok else to_us_array(ts_col)
        inside = (ts >= start_us) & (ts < end_us)
        everything = bool(inside.all())
        dataset = task.outputs[key]
        if spec.points[dataset]:
            plain = ts_ok and columns == ["ts", "value"] and frame["value"].dtype == np.float64
            if everything and plain:
                handed = frame if _plain_index(frame) else frame.reset_index(drop=True)
                kept[key] = (handed, (ts, frame["value"].to_numpy()))
                continue
            ts_kept = ts[inside]
            values = frame["value"].to_numpy(dtype="float64", na_value=np.nan)[inside]
            handed = pd.DataFrame({"ts": from_us_index(ts_kept), "value": values})
            kept[key] = (handed, (ts_kept, values))
            continue
        body = frame if everything else frame[inside]
        if "series_id" in columns:
            body = body.drop(columns=["series_id"])
        if not _plain_index(body):
            body = body.reset_index(drop=True)
        if not ts_ok:
            body = body.assign(ts=from_us_index(ts[inside]))
        kept[key] = (body, body)
    return kept


_TS_DTYPE = pd.DatetimeTZDtype("us", "UTC")


def _plain_index(frame: pd.DataFrame) -> bool:
    index = frame.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def _table(parts: list[tuple[str, Any]], points: bool) -> pa.Table:
    """One table of a chunk's series for one output."""
    if not points:
        return assemble(parts, points=False)
    parts = [(sid, p) for sid, p in parts if len(p[0])]
    if not parts:
        return POINT_SCHEMA.empty_table()
    lengths = np.array([len(ts) for _, (ts, _) in parts], dtype=np.int64)
    codes = pa.array(np.repeat(np.arange(len(parts), dtype=np.int32), lengths))
    ids = pa.DictionaryArray.from_arrays(codes, pa.array([sid for sid, _ in parts], pa.string()))
    ts = from_us_array(np.concatenate([ts for _, (ts, _) in parts]))
    values = pa.array(np.concatenate([v for _, (_, v) in parts]))
    return pa.Table.from_arrays([ids, ts, values], schema=POINT_SCHEMA)


def _len(frame: Any) -> int:
    if frame is None:
        return 0
    if isinstance(frame, tuple):
        return len(frame[0])
    return len(frame)
