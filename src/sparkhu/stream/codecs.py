"""Message codecs: points as Arrow IPC batches, and JSON records (plain or Kafka Connect envelopes).

Arrow is the bus's own format: a message value is one IPC stream (zstd-compressed by
default) of a :data:`~sparkhu.series.POINT_SCHEMA` table. :func:`publish_points` is the one
helper producers use: it splits a table by the partition of each series
(:func:`split_by_series_partition`) so that every series always travels in the same
partition, in order.

JSON is for foreign topics. :class:`JsonDecoder` reads plain points
(``{"series_id": .., "ts": .., "value": ..}``), Kafka Connect ``JsonConverter`` envelopes
(``{"schema": {..}, "payload": {..}}``) of such points, and measurement records as the
InfluxDB source connector wrote them (``{"time": .., "measurement": "electricity",
"zone": "FGE", "V": 120.1, "P": 33.0}`` → ``ampds2/electricity/FGE.V``, ``.../FGE.P``).
Undecodable records become rows of a quarantine table instead of stopping the batch; every point
obeys the one rule of every entry point (:data:`~sparkhu.series.POINT_RULES`: a timestamp in the
years 1 to 9998, a finite value — ``Infinity``, ``1e400`` are quarantined, ``NaN`` and ``null``
are missing values and make no point).

>>> from sparkhu.series import points
>>> table = points("ampds2/electricity/WHE.P", [0, 60_000_000], [1.0, 2.5])
>>> decode_points(encode_arrow(table)).equals(table)
True
>>> [key for key, _ in split_by_series_partition(table, 4)]
[b'ampds2/electricity/WHE.P']
>>> decoder = JsonDecoder(source="ampds2", tag="zone")
>>> good, bad = decoder.decode(
...     [b'{"time": 1609426800000, "measurement": "electricity", "zone": "FGE", "V": 120.1}', b"oops"],
...     ["in/0/0", "in/0/1"],
... )
>>> good.column("series_id").to_pylist(), bad.column("source").to_pylist()
(['ampds2/electricity/FGE.V'], ['in/0/1'])
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from sparkhu.errors import BusError, CodecError, InputError
from sparkhu.series import (
    BAD_TS,
    BAD_VALUE,
    POINT_SCHEMA,
    SERIES_ID_TYPE,
    conform,
    is_series_id,
    quarantine_records,
)
from sparkhu.stream.base import Bus, partition_for
from sparkhu.timeaxis import EPOCH_UNITS_US, from_us_array, in_point_range, parse_time, to_us

ARROW_HEADERS = {"content-type": b"application/vnd.apache.arrow.stream"}
"""Headers :func:`publish_points` puts on its messages."""

_ARROW_MAGIC = b"\xff\xff\xff\xff"
_MAX_PRODUCE_BYTES = 64 << 20
_PART_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_RAW_LIMIT = 65_536


def encode_arrow(table: pa.Table, *, compression: str | None = "zstd") -> bytes:
    """One Arrow IPC stream of ``table`` (``compression``: ``zstd``, ``lz4`` or ``None``)."""
    try:
        sink = pa.BufferOutputStream()
        options = pa.ipc.IpcWriteOptions(compression=compression)
        with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise CodecError(f"cannot encode a table of {table.num_rows} rows as Arrow IPC: {exc}") from exc


def is_arrow(data: bytes) -> bool:
    """True when ``data`` starts like an Arrow IPC stream."""
    return bytes(data[:4]) == _ARROW_MAGIC


def decode_arrow(data: bytes) -> pa.Table:
    """The table in one Arrow IPC stream, fully validated; :class:`CodecError` when it is not one."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        # Bus messages are untrusted: a stream whose offsets or dictionary indices point outside
        # its buffers reads without complaint and crashes the process when its data is touched.
        table.validate(full=True)
        return table
    except (pa.ArrowException, OSError, ValueError, TypeError, OverflowError) as exc:
        # a malformed stream raises ArrowInvalid, or OSError (e.g. a negative metadata length)
        raise CodecError(f"not an Arrow IPC stream ({len(data)} bytes): {exc}") from exc


def decode_points(data: bytes) -> pa.Table:
    """An Arrow IPC message as a :data:`~sparkhu.series.POINT_SCHEMA` table."""
    table = decode_arrow(data)
    try:
        return conform(table)
    except (InputError, pa.ArrowException) as exc:
        raise CodecError(f"Arrow message is not a points table ({table.schema.names}): {exc}") from exc


def _single_chunk(table: pa.Table) -> pa.Table:
    try:
        table = conform(table).combine_chunks()
    except (InputError, pa.ArrowException) as exc:
        raise CodecError(f"not a points table: {exc}") from exc
    if table.column("series_id").null_count or table.column("ts").null_count:
        raise CodecError("points table has null series_id or ts; every point needs both")
    return table


def _compact(table: pa.Table) -> pa.Table:
    """Drop dictionary entries of ``series_id`` that no row uses (each message carries only its series)."""
    ids = table.column("series_id").combine_chunks()
    indices = ids.indices.to_numpy(zero_copy_only=False)
    used = np.zeros(len(ids.dictionary), dtype=bool)
    used[indices] = True
    if used.all():
        return table
    remap = (np.cumsum(used) - 1).astype("int32")
    compacted = pa.DictionaryArray.from_arrays(
        pa.array(remap[indices]), ids.dictionary.filter(pa.array(used))
    )
    return table.set_column(0, POINT_SCHEMA.field("series_id"), compacted.cast(SERIES_ID_TYPE))


def split_by_series_partition(table: pa.Table, partitions: int) -> list[tuple[bytes, pa.Table]]:
    """Group points by the partition of their series: one ``(key, table)`` per partition touched.

    All series of one partition travel in one message keyed by the series id of its first
    row; the key routes the message to that very partition (:func:`partition_for`), so each
    series always lands in the same partition and the order of its points is kept.
    """
    if not isinstance(partitions, int) or partitions < 1:
        raise CodecError(f"partitions must be an integer >= 1, got {partitions!r}")
    table = _single_chunk(table)
    if table.num_rows == 0:
        return []
    ids = table.column("series_id").chunk(0)
    names = ids.dictionary.to_pylist()
    part_of_name = np.fromiter(
        (partition_for(name.encode(), partitions) for name in names), dtype=np.int64, count=len(names)
    )
    indices = ids.indices.to_numpy(zero_copy_only=False)
    row_part = part_of_name[indices]
    order = np.argsort(row_part, kind="stable")
    row_part = row_part[order]
    if not np.array_equal(order, np.arange(len(order))):
        table = table.take(pa.array(order))
    bounds = [0, *(np.flatnonzero(np.diff(row_part)) + 1).tolist(), len(row_part)]
    result = []
    for start, end in itertools.pairwise(bounds):
        key = names[indices[order[start]]].encode()
        result.append((key, _compact(table.slice(start, end - start))))
    return result


def publish_points(
    bus: Bus, topic: str, table: pa.Table, *, max_rows: int = 50_000, compression: str | None = "zstd"
) -> int:
    """Publish points to ``topic`` (created if missing) as Arrow messages of at most ``max_rows``.

    Returns the number of messages. Records go to the bus in as few ``produce`` calls as
    possible (one per 64 MiB of encoded data), each durable when it returns.
    """
    if not isinstance(max_rows, int) or max_rows < 1:
        raise CodecError(f"publish to {topic!r}: max_rows must be an integer >= 1, got {max_rows!r}")
    try:
        partitions = bus.partitions(topic)
    except BusError:
        bus.create_topic(topic)
        partitions = bus.partitions(topic)
    records: list[tuple[bytes | None, bytes]] = []
    size = sent = 0
    for key, part in split_by_series_partition(table, partitions):
        for start in range(0, part.num_rows, max_rows):
            value = encode_arrow(_compact(part.slice(start, max_rows)), compression=compression)
            records.append((key, value))
            size += len(value)
            if size >= _MAX_PRODUCE_BYTES:
                bus.produce(topic, records, headers=ARROW_HEADERS)
                sent, records, size = sent + len(records), [], 0
    if records:
        bus.produce(topic, records, headers=ARROW_HEADERS)
    return sent + len(records)


def quarantine_table(rows: Sequence[tuple[str, str, str | None, str, str]]) -> pa.Table:
    """A :data:`~sparkhu.series.QUARANTINE_SCHEMA` table of (source, location, field, reason, raw) rows."""
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(5)]
    sources, locations, fields, reasons, raws = columns
    return quarantine_records(sources, locations, fields, reasons, raws)


def raw_text(value: bytes | str) -> str:
    """A message value as text for the quarantine: UTF-8 if it is, else ``base64:...`` (64 KiB at most)."""
    if isinstance(value, str):
        return value[:_RAW_LIMIT]
    data = bytes(value[:_RAW_LIMIT])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


class _Bad(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason


def _points_table(ids: list[str], ts: list[int] | np.ndarray, values: list[float] | np.ndarray) -> pa.Table:
    sid = pa.array(ids, pa.string()).dictionary_encode().cast(SERIES_ID_TYPE)
    return pa.Table.from_arrays([sid, from_us_array(ts), pa.array(values, pa.float64())], schema=POINT_SCHEMA)


class JsonDecoder:
    """Decode JSON message values (plain points, Connect envelopes, measurement records) to points.

    ``source`` enables measurement records: each numeric field becomes the series
    ``source/measurement/<tag value>.<field>`` (``source/measurement/<field>`` without
    ``tag``; with ``tag="*"`` every text value of the record, in key order, as line protocol names
    series); ``measurement`` fixes the measurement instead of reading the record's
    ``measurement`` key; ``fields`` keeps only those fields. The tag is read from the record
    or from its ``tags`` object. Times (``time_field`` for records, ``ts`` for points) are
    epoch numbers in ``ts_unit`` (``s``, ``ms`` as Kafka Connect's Timestamp, ``us``) or
    ISO-8601 strings (UTC when naive). ``strict`` raises :class:`CodecError` on the first bad
    record instead of quarantining it.

    >>> record = b'{"series_id": "a/b/c", "ts": "2021-01-01T00:00:00Z", "value": 1}'
    >>> good, bad = JsonDecoder().decode([record], ["t/0/0"])
    >>> good.column("ts").to_pylist()[0].isoformat(), bad.num_rows
    ('2021-01-01T00:00:00+00:00', 0)
    """

    def __init__(
        self,
        *,
        source: str | None = None,
        tag: str | None = None,
        measurement: str | None = None,
        fields: Sequence[str] | None = None,
        time_field: str = "time",
        ts_unit: str = "ms",
        strict: bool = False,
    ) -> None:
        if ts_unit not in EPOCH_UNITS_US:
            raise CodecError(f"ts_unit {ts_unit!r} is not one of {', '.join(EPOCH_UNITS_US)}")
        for name, part in (("source", source), ("measurement", measurement)):
            if part is not None and not _PART_RE.match(part):
                raise CodecError(
                    f"{name} {part!r} cannot be part of a series id (letters, digits and _ . : -)"
                )
        self.source = source
        self.tag = tag
        self.measurement = measurement
        self.fields = None if fields is None else frozenset(fields)
        self.time_field = time_field
        self.ts_unit = ts_unit
        self.strict = strict
        self._scale = EPOCH_UNITS_US[ts_unit]
        self._skip = {time_field, "measurement", "tags", *([tag] if tag and tag != "*" else [])}
        self._good_parts: set[str] = set()

    def decode(self, values: Sequence[bytes | str], sources: Sequence[str]) -> tuple[pa.Table, pa.Table]:
        """``(points, quarantine)`` of message ``values``; ``sources`` names each (topic/partition/offset)."""
        if len(values) != len(sources):
            raise CodecError(f"{len(values)} values but {len(sources)} sources; give one source per value")
        fast = self._decode_plain_points(values)
        if fast is not None:
            return fast, quarantine_table([])
        ids: list[str] = []
        ts: list[int] = []
        vals: list[float] = []
        bad: list[tuple[str, str, str | None, str, str]] = []
        for value, source in zip(values, sources, strict=True):
            try:
                doc = json.loads(value)
            except (ValueError, TypeError) as exc:
                self._reject(bad, source, "", None, f"not JSON: {exc}", value)
                continue
            items = doc if isinstance(doc, list) else [doc]
            for index, item in enumerate(items):
                location = f"item {index}" if isinstance(doc, list) else ""
                raw = json.dumps(item) if isinstance(doc, list) else value
                try:
                    decoded, problems = self._record(item)
                except _Bad as exc:
                    self._reject(bad, source, location, exc.field, exc.reason, raw)
                    continue
                for field, reason in problems:
                    self._reject(bad, source, location, field, reason, raw)
                for sid, t, v in decoded:
                    ids.append(sid)
                    ts.append(t)
                    vals.append(v)
        return _points_table(ids, ts, vals), quarantine_table(bad)

    def _decode_plain_points(self, values: Sequence[bytes | str]) -> pa.Table | None:
        """The fast path for a batch of well-formed ``{"series_id", "ts", "value"}`` objects.

        One ``json.loads`` for the whole batch and column-wise checks instead of per-record
        Python work: a topic of one JSON point per message is the common interop case. Returns
        ``None`` when anything is unusual (other shapes, bad values); the careful per-record
        path then decides, record by record, what to keep and what to quarantine.
        """
        if not values or self.source is not None:
            return None
        parts = [v if isinstance(v, bytes) else v.encode() for v in values]
        try:
            docs = json.loads(b"[" + b",".join(parts) + b"]")
        except (ValueError, TypeError):
            return None
        if len(docs) != len(values) or not all(type(d) is dict and len(d) == 3 for d in docs):
            return None
        try:
            ids = [d["series_id"] for d in docs]
            raw_ts = [d["ts"] for d in docs]
            raw_vals = [d["value"] for d in docs]
        except KeyError:
            return None
        if not all(type(t) is int for t in raw_ts) or not all(type(v) in (int, float) for v in raw_vals):
            return None
        distinct = set(ids)
        if not all(type(sid) is str and (sid in self._good_parts or is_series_id(sid)) for sid in distinct):
            return None
        # Range-checked on Python ints first, so the int64 product cannot overflow.
        if not (in_point_range(min(raw_ts) * self._scale) and in_point_range(max(raw_ts) * self._scale)):
            return None
        try:
            numbers = np.asarray(raw_vals, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the careful path quarantines it
            return None
        if not np.isfinite(numbers).all():
            return None
        self._good_parts.update(distinct)
        ts_us = np.asarray(raw_ts, dtype=np.int64) * self._scale
        return _points_table(ids, ts_us, numbers)

    def _reject(
        self, bad: list[Any], source: str, location: str, field: str | None, reason: str, raw: bytes | str
    ) -> None:
        if self.strict:
            where = f"{source} {location}".strip()
            raise CodecError(f"{where}: {field + ': ' if field else ''}{reason}")
        bad.append((source, location, field, reason, raw_text(raw)))

    def _record(self, item: Any) -> tuple[list[tuple[str, int, float]], list[tuple[str, str]]]:
        """The points of one record, and (field, reason) of each numeric field that is not a finite number."""
        if isinstance(item, dict) and "payload" in item and "schema" in item:
            item = item["payload"]
        if not isinstance(item, dict):
            raise _Bad(None, f"expected a JSON object, got {type(item).__name__}")
        if "series_id" in item:
            sid = item["series_id"]
            if type(sid) is not str or sid not in self._good_parts:
                if not isinstance(sid, str) or not is_series_id(sid):
                    raise _Bad("series_id", f"{sid!r} is not source/measurement/field")
                self._good_parts.add(sid)
            value = item.get("value")
            if value is not None and (type(value) not in (int, float)):
                raise _Bad("value", f"expected a number or null, got {value!r}")
            ts = self._time(item.get("ts"), "ts")
            number = _number(value)
            if number is None:
                raise _Bad("value", BAD_VALUE)
            return ([] if math.isnan(number) else [(sid, ts, number)]), []
        if self.source is None:
            raise _Bad(None, "not a point (series_id, ts, value); pass source= to read measurement records")
        ts = self._time(item.get(self.time_field), self.time_field)
        measurement = self.measurement or item.get("measurement")
        prefix = f"{self.source}/{self._part(measurement, 'measurement')}/"
        if self.tag == "*":  # every text value is a tag, in key order (as line protocol names series)
            tags = item.get("tags")
            pairs = tags if isinstance(tags, dict) else item
            texts = sorted(k for k, v in pairs.items() if type(v) is str and k not in self._skip)
            prefix += "".join(self._part(pairs[k], k) + "." for k in texts)
        elif self.tag is not None:
            tags = item.get("tags")
            tag_value = (tags if isinstance(tags, dict) else item).get(self.tag)
            prefix += self._part(tag_value, self.tag) + "."
        out: list[tuple[str, int, float]] = []
        problems: list[tuple[str, str]] = []
        numeric = 0
        for k, v in item.items():
            chosen = self.fields is None or k in self.fields
            if type(v) not in (int, float) or k in self._skip or not chosen:
                continue
            numeric += 1
            number = _number(v)
            if number is None:
                problems.append((k, BAD_VALUE))
            elif not math.isnan(number):  # NaN: a missing value, no point
                out.append((prefix + self._part(k, k), ts, number))
        if not numeric:
            wanted = ", ".join(sorted(self.fields)) if self.fields else "any"
            raise _Bad(None, f"no numeric field ({wanted}) in the record")
        return out, problems

    def _part(self, text: Any, field: str) -> str:
        if type(text) is str and text in self._good_parts:
            return text
        if not isinstance(text, str):
            raise _Bad(field, "missing" if text is None else f"expected a string, got {text!r}")
        if not _PART_RE.match(text):
            raise _Bad(field, f"{text!r} cannot be part of a series id (letters, digits and _ . : -)")
        self._good_parts.add(text)
        return text

    def _time(self, raw: Any, field: str) -> int:
        kind = type(raw)
        if kind is str and raw.isascii() and raw.lstrip("-").isdigit():  # not "²": isdigit, not int
            raw, kind = int(raw), int
        if kind is int:
            us = raw * self._scale
        elif kind is float and math.isfinite(raw * self._scale):
            us = round(raw * self._scale)
        elif kind is str:
            try:
                us = to_us(parse_time(raw, field))
            except InputError:
                raise _Bad(field, f"{raw!r} is neither epoch {self.ts_unit} nor ISO-8601") from None
        else:
            raise _Bad(field, "missing" if raw is None else f"expected a time, got {raw!r}")
        if not in_point_range(us):
            shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
            raise _Bad(field, f"{shown} as epoch {self.ts_unit}: {BAD_TS}")
        return us


def _number(value: int | float | None) -> float | None:
    """A JSON number as a float: NaN for a missing one (null, NaN), None when not finite (±inf, 1e400)."""
    if value is None:
        return math.nan
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float64
        return None
    return None if math.isinf(number) else number


_CONNECT_SCHEMA = json.dumps(
    {
        "type": "struct",
        "name": "sparkhu.Point",
        "optional": False,
        "fields": [
            {"field": "series_id", "type": "string", "optional": False},
            {
                "field": "ts",
                "type": "int64",
                "optional": False,
                "name": "org.apache.kafka.connect.data.Timestamp",
                "version": 1,
            },
            {"field": "value", "type": "double", "optional": True},
        ],
    },
    separators=(",", ":"),
)


def _columns(table: pa.Table, ts_unit: str) -> tuple[list[str], list[int], list[float | None]]:
    if ts_unit not in EPOCH_UNITS_US:
        raise CodecError(f"ts_unit {ts_unit!r} is not one of {', '.join(EPOCH_UNITS_US)}")
    table = _single_chunk(table)
    ts = np.floor_divide(table.column("ts").cast(pa.int64()).to_numpy(), EPOCH_UNITS_US[ts_unit]).tolist()
    value = table.column("value")
    vals = [None if v is None or math.isnan(v) else v for v in value.to_pylist()]
    return table.column("series_id").to_pylist(), ts, vals


def encode_json(table: pa.Table, *, ts_unit: str = "ms") -> list[bytes]:
    """One ``{"series_id", "ts", "value"}`` object per point (ts as epoch ``ts_unit``; NaN as null)."""
    ids, ts, vals = _columns(table, ts_unit)
    return [
        json.dumps({"series_id": s, "ts": t, "value": v}).encode()
        for s, t, v in zip(ids, ts, vals, strict=True)
    ]


def encode_connect(table: pa.Table) -> list[bytes]:
    """One Kafka Connect ``{"schema", "payload"}`` envelope per point (ts as Connect Timestamp, ms)."""
    ids, ts, vals = _columns(table, "ms")
    return [
        f'{{"schema":{_CONNECT_SCHEMA},"payload":{payload}}}'.encode()
        for payload in (
            json.dumps({"series_id": s, "ts": t, "value": v}) for s, t, v in zip(ids, ts, vals, strict=True)
        )
    ]
