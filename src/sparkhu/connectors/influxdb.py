"""The InfluxDB 1.x source: one measurement polled in timestamp mode, as Kafka Connect's connector did.

Each poll asks ``SELECT * FROM <measurement> WHERE time > <watermark − lag> ORDER BY time`` as a
chunked query (``chunk_size`` rows per chunk, so memory stays bounded) and turns every numeric field
of every row into a point of the series ``<source>/<measurement>/<tag values>.<field>`` — for the
original's data ``AMPds2/electricity/WHE.P`` (:func:`sparkhu.stream.lineproto.series_name`). The
position after each batch is ``{until_us, recent}``: the newest timestamp emitted and a hash of every
point emitted in the last ``lag_s`` seconds before it. Rows of one timestamp are never split across
batches, so the position is exact.

Late points — written to InfluxDB after a poll already passed their time — are found by re-reading
the last ``lag_s`` seconds: a point whose hash is in ``recent`` was emitted already and is left out,
so nothing is sent twice; a corrected value (same time, new value) is sent again and the lake keeps
the latest. A field whose value is not a number (a string, a field whose type changed between
shards) is quarantined with its row; an InfluxDB that is down or errors mid-poll raises one
:class:`~sparkhu.errors.ConnectorError` naming the connector and the statement, after the retries of
:mod:`sparkhu.retrying`; what was emitted before it is kept by the runner's watermark.

With ``poll_s`` the source polls forever (yielding an empty batch between polls so the runner can
stop); without, it reads up to the newest point once and ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from sparkhu.connectors.base import Position, QuarantineFn, Source, SourceSpec
from sparkhu.connectors.influx_client import InfluxClient, quote_ident
from sparkhu.series import POINT_SCHEMA, empty_points, quarantine_records
from sparkhu.timeaxis import US_PER_S, from_us_array

__all__ = ["InfluxSource", "InfluxSourceSettings", "point_hashes"]


def point_hashes(table: pa.Table) -> np.ndarray:
    """One int64 hash per point of ``(series_id, ts, value)`` (what ``recent`` keeps)."""
    if table.num_rows == 0:
        return np.empty(0, dtype=np.int64)
    ids = table.column("series_id").cast(pa.string()).to_numpy(zero_copy_only=False)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    values = table.column("value").to_numpy()
    frame = pd.DataFrame({"s": ids, "t": ts, "v": values})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().view(np.int64)


@dataclass(frozen=True)
class _Seen:
    """Where a poll stands: the newest time emitted, and the points emitted within the lag before it."""

    until: int | None
    hashes: np.ndarray
    times: np.ndarray

    @classmethod
    def of(cls, position: Mapping[str, Any] | None) -> _Seen:
        p = position or {}
        return cls(
            p.get("until_us"),
            np.asarray(p.get("recent", []), dtype=np.int64),
            np.asarray(p.get("recent_ts", []), dtype=np.int64),
        )

    def position(self) -> Position:
        return {"until_us": self.until, "recent": self.hashes.tolist(), "recent_ts": self.times.tolist()}

    def emit(self, table: pa.Table, lag_us: int) -> tuple[pa.Table, _Seen]:
        """The points of ``table`` not emitted before, and what has been seen after them."""
        hashes = point_hashes(table)
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        fresh = ~np.isin(hashes, self.hashes)
        newest = int(ts.max()) if self.until is None else max(int(ts.max()), self.until)
        if lag_us > 0:
            all_hashes = np.concatenate([self.hashes, hashes[fresh]])
            all_times = np.concatenate([self.times, ts[fresh]])
            within = all_times > newest - lag_us
            seen = _Seen(newest, all_hashes[within], all_times[within])
        else:
            seen = _Seen(newest, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
        return (table if fresh.all() else table.filter(pa.array(fresh))), seen


class InfluxSource(Source):
    """Poll ``measurement`` of database ``db`` at ``url``; series named after ``source`` (see the module)."""

    def __init__(
        self,
        name: str,
        url: str,
        db: str,
        measurement: str,
        *,
        source: str | None = None,
        series_measurement: str | None = None,
        tags: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
        chunk_size: int = 10_000,
        lag_s: float = 0.0,
        poll_s: float | None = None,
        username: str | None = None,
        password: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.db, self.measurement = db, measurement
        self.source = source or db
        self.series_measurement = series_measurement or measurement
        self.tags = None if tags is None else list(tags)
        self.fields = None if fields is None else set(fields)
        self.chunk_size, self.lag_us, self.poll_s = chunk_size, round(lag_s * US_PER_S), poll_s
        self.stop = stop or threading.Event()
        self.client = InfluxClient(
            url, who=f"influxdb source {name!r}", username=username, password=password, stop=self.stop
        )

    # ---- reading -----------------------------------------------------------------------
    def read(
        self, position: Mapping[str, Any] | None, quarantine: QuarantineFn
    ) -> Iterator[tuple[pa.Table, Position]]:
        """Batches after ``position`` (see the module docstring)."""
        seen = _Seen.of(position)
        while True:
            for batch, after in self._poll(seen, quarantine):
                seen = after
                yield batch, after.position()
            if self.poll_s is None:
                return
            deadline = time.monotonic() + self.poll_s
            while time.monotonic() < deadline and not self.stop.is_set():
                yield empty_points(), seen.position()
                self.stop.wait(min(0.2, self.poll_s))
            if self.stop.is_set():
                return

    def statement(self, until: int | None) -> str:
        """The InfluxQL of one poll after ``until`` (µs; None: from the beginning)."""
        where = "" if until is None else f" WHERE time > {(until - self.lag_us) * 1000}"
        return f"SELECT * FROM {quote_ident(self.measurement)}{where} ORDER BY time ASC"

    def _tag_keys(self) -> set[str]:
        keys: set[str] = set()
        statement = f"SHOW TAG KEYS FROM {quote_ident(self.measurement)}"
        for result in self.client.query(statement, self.db):
            for series in result.get("series", []):
                keys.update(row[0] for row in series.get("values", []))
        return keys

    def _text_fields(self) -> list[str]:
        """Fields stored as strings or booleans somewhere (a type that changed between shards too):
        ``SELECT *`` leaves such values out, so they are read on their own and quarantined."""
        types: dict[str, set[str]] = {}
        for result in self.client.query(f"SHOW FIELD KEYS FROM {quote_ident(self.measurement)}", self.db):
            for series in result.get("series", []):
                for key, kind in series.get("values", []):
                    types.setdefault(key, set()).add(kind)
        chosen = [k for k in types if self.fields is None or k in self.fields]
        return sorted(k for k in chosen if types[k] & {"string"})

    def _quarantine_text(self, field: str, until: int | None, quarantine: QuarantineFn) -> None:
        where = "" if until is None else f" WHERE time > {until * 1000}"
        statement = f"SELECT {quote_ident(field)}::string FROM {quote_ident(self.measurement)}{where}"
        for result in self.client.query(statement, self.db, chunk_size=self.chunk_size):
            for series in result.get("series", []):
                rows = series.get("values", [])
                if not rows:
                    continue
                quarantine(
                    quarantine_records(
                        self.name,
                        [f"time {row[0]}" for row in rows],
                        [field] * len(rows),
                        [
                            f"expected a number, got {row[1]!r} (has the field's type changed?)"
                            for row in rows
                        ],
                        [f"{self.measurement} {field}={row[1]!r} {row[0]}" for row in rows],
                    )
                )

    def _poll(self, seen: _Seen, quarantine: QuarantineFn) -> Iterator[tuple[pa.Table, _Seen]]:
        tag_keys = self._tag_keys()
        for field in self._text_fields():
            self._quarantine_text(field, seen.until, quarantine)
        held: pa.Table | None = None  # the rows of the newest timestamp of a chunk wait for the next
        number = 0
        for result in self.client.query(self.statement(seen.until), self.db, chunk_size=self.chunk_size):
            for series in result.get("series", []):
                number += 1
                table = self._points(series, tag_keys, number, quarantine)
                if held is not None:
                    table = pa.concat_tables([held, table])
                if table.num_rows == 0:
                    held = None
                    continue
                ts = table.column("ts").cast(pa.int64())
                keep = pc.less(ts, pc.max(ts))
                out, held = table.filter(keep), table.filter(pc.invert(keep))
                if out.num_rows:
                    batch, seen = seen.emit(out, self.lag_us)
                    yield batch, seen
        if held is not None and held.num_rows:
            yield seen.emit(held, self.lag_us)

    def _points(
        self, series: Mapping[str, Any], tag_keys: set[str], number: int, quarantine: QuarantineFn
    ) -> pa.Table:
        """The points of one chunk of rows (columns: time, tags, fields)."""
        columns: list[str] = series.get("columns", [])
        rows: list[list[Any]] = series.get("values", [])
        if not rows:
            return empty_points()
        data = list(zip(*rows, strict=True))
        ts = np.asarray(data[columns.index("time")], dtype=np.int64)
        tag_names = (
            sorted(c for c in columns if c in tag_keys)
            if self.tags is None
            else [t for t in self.tags if t in columns]
        )
        prefix = f"{self.source}/{self.series_measurement}/"
        tag_arrays = [pa.array(data[columns.index(t)], pa.string()) for t in tag_names]
        # Few tag sets, many rows: name each distinct tag set once, then reuse its index per field.
        stem = (
            tag_arrays[0]
            if len(tag_arrays) == 1
            else pc.binary_join_element_wise(*tag_arrays, pa.scalar("."), null_handling="skip")
            if tag_arrays
            else pa.nulls(len(rows), pa.string())
        ).dictionary_encode()
        stems = [prefix + (t + "." if t else "") for t in stem.dictionary.to_pylist()]
        codes = stem.indices.fill_null(len(stems))
        stems.append(prefix)  # rows without any tag
        tables: list[pa.Table] = []
        for index, column in enumerate(columns):
            if (
                column == "time"
                or column in tag_keys
                or (self.fields is not None and column not in self.fields)
            ):
                continue
            values, good = _numbers(data[index])
            if not good.all():
                self._quarantine_rows(series, data, columns, index, good, number, quarantine)
            present = good & ~np.isnan(values)
            if not present.any():
                continue
            mask = pa.array(present)
            names = pa.array([s + column for s in stems], pa.string())
            ids = pa.DictionaryArray.from_arrays(codes.filter(mask).cast(pa.int32()), names)
            tables.append(
                pa.Table.from_arrays(
                    [
                        ids,
                        from_us_array(ts[present]),
                        pa.array(values[present], pa.float64()),
                    ],
                    schema=POINT_SCHEMA,
                )
            )
        if not tables:
            return empty_points()
        # ids that break the rules (a tag value with a space) are the runner's to quarantine
        return pa.concat_tables(tables).combine_chunks().sort_by([("ts", "ascending")])

    def _quarantine_rows(
        self,
        series: Mapping[str, Any],
        data: list[tuple[Any, ...]],
        columns: list[str],
        index: int,
        good: np.ndarray,
        number: int,
        quarantine: QuarantineFn,
    ) -> None:
        bad = np.flatnonzero(~good)
        field = columns[index]
        reasons = [f"expected a number, got {data[index][r]!r} (has the field's type changed?)" for r in bad]
        raws = [str(dict(zip(columns, (col[r] for col in data), strict=True))) for r in bad]
        where = [f"chunk {number} time {data[columns.index('time')][r]}" for r in bad]
        quarantine(quarantine_records(self.name, where, [field] * len(bad), reasons, raws))


def _numbers(column: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(values, good)`` of a field column: numbers as float (null: NaN), booleans 1/0; others not good."""
    try:
        values = pa.array(column, pa.float64()).to_numpy(zero_copy_only=False)
        return values, np.ones(len(values), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        pass
    values = np.full(len(column), np.nan)
    good = np.ones(len(column), dtype=bool)
    for i, v in enumerate(column):  # a mixed column (a type change): the careful path
        if v is None:
            continue
        if isinstance(v, bool):
            values[i] = float(v)
        elif isinstance(v, int | float) and np.isfinite(float(v)):
            values[i] = float(v)
        else:
            good[i] = False
    return values, good


class InfluxSourceSettings(SourceSpec):
    """A ``[[sources]]`` entry of ``kind = "influxdb"``: one measurement of an InfluxDB 1.x database.

    ``source`` and ``measurement`` name the series as always; ``database`` defaults to ``source``
    and ``influx_measurement`` to ``measurement``.

    >>> spec = InfluxSourceSettings(name="amp", kind="influxdb", url="http://127.0.0.1:8086",
    ...                             source="AMPds2", measurement="electricity", lag_s=60)
    >>> src = spec.open()
    >>> src.db, src.statement(120_000_000)
    ('AMPds2', 'SELECT * FROM "electricity" WHERE time > 60000000000 ORDER BY time ASC')
    """

    kind: Literal["influxdb"] = "influxdb"
    url: str = Field(pattern=r"^https?://")
    database: str | None = None
    influx_measurement: str | None = None
    tags: list[str] | None = None
    """Tag keys naming a series, in order (default: all, sorted)."""
    fields: list[str] | None = None
    """Fields to read (default: all numeric ones)."""
    chunk_size: int = Field(default=10_000, ge=1, le=1_000_000)
    lag_s: float = Field(default=0.0, ge=0.0)
    """Seconds before the watermark re-read on every poll, for points written late."""
    poll_s: float | None = Field(default=None, gt=0.0)
    """Seconds between polls; none: read once up to the newest point and end."""
    username: str | None = None
    password: str | None = None

    def open(self) -> InfluxSource:
        """The connector this entry describes."""
        return InfluxSource(
            self.name,
            self.url,
            self.database or self.source,
            self.influx_measurement or self.measurement,
            source=self.source,
            series_measurement=self.measurement,
            tags=self.tags,
            fields=self.fields,
            chunk_size=self.chunk_size,
            lag_s=self.lag_s,
            poll_s=self.poll_s,
            username=self.username,
            password=self.password,
        )
