"""HTTP push: points that clients send (Telegraf, scripts) decoded and landed in the lake.

The gateway's push endpoints (``POST /write``, InfluxDB 1.x's, for Telegraf's ``outputs.influxdb``;
``POST /api/push``, JSON, for ``outputs.http``) hand their bodies here:

* :func:`decode_json` reads Telegraf's JSON serializer output — ``{"metrics": [{"name", "tags",
  "fields", "timestamp"}]}``, one such metric, or a list of them — and sparkhu's own points
  (``{"series_id", "ts", "value"}``); series are named as line protocol names them
  (:func:`sparkhu.stream.lineproto.series_name`: ``<db>/<name>/<tag values>.<field>``);
* line protocol is read by :func:`sparkhu.stream.lineproto.parse_lines`;
* :func:`land_pushed` writes the points to ``raw/<db>_<measurement>`` per measurement
  (:func:`~sparkhu.connectors.landing.land`: durable, idempotent, counted once) and the bad records
  to ``quarantine/<db>_push`` with their reason, before the endpoint answers.

>>> good, bad = decode_json(b'{"metrics": [{"name": "cpu", "tags": {"host": "a"}, '
...                         b'"fields": {"usage": 3.5, "state": "ok"}, "timestamp": 60}]}', "telegraf")
>>> good.column("series_id").to_pylist(), bad.column("reason").to_pylist()
(['telegraf/cpu/a.usage'], ['a string field; only numbers become points'])
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.config import dataset_name
from sparkhu.connectors.landing import land
from sparkhu.series import BAD_TS, POINT_SCHEMA, SERIES_ID_TYPE, SeriesId, quarantine_records
from sparkhu.stream.codecs import JsonDecoder, raw_text
from sparkhu.stream.lineproto import PRECISION_US, series_name
from sparkhu.timeaxis import from_us_array, in_point_range, now_us

if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake

__all__ = ["Landed", "decode_json", "land_pushed"]

_PART_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


@dataclass(frozen=True)
class Landed:
    """What one push did: points landed (new to the lake), records quarantined, datasets written."""

    points: int
    quarantined: int
    datasets: list[str]
    first_problem: str | None = None


def _ok(part: Any) -> bool:
    return isinstance(part, str) and bool(part) and set(part) <= _PART_CHARS


def decode_json(
    body: bytes, db: str, *, precision: str = "s", source: str = "push"
) -> tuple[pa.Table, pa.Table]:
    """``(points, quarantine)`` of a JSON push body (see the module docstring); ``precision``: the
    metrics' timestamp unit (Telegraf's ``json_timestamp_units``, 1 s by default)."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        unreadable = quarantine_records(source, ["body"], [None], [f"not JSON: {exc}"], [raw_text(body)])
        return POINT_SCHEMA.empty_table(), unreadable
    items = doc["metrics"] if isinstance(doc, dict) and isinstance(doc.get("metrics"), list) else doc
    items = items if isinstance(items, list) else [items]
    if items and all(isinstance(i, dict) and "series_id" in i for i in items):
        encoded = [json.dumps(i).encode() for i in items]
        return JsonDecoder(ts_unit="ms").decode(encoded, [f"{source} item {n}" for n in range(len(items))])
    scale = PRECISION_US.get(precision)
    if scale is None:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISION_US)}")
    ids: list[str] = []
    ts: list[int] = []
    values: list[float] = []
    bad: list[tuple[str, str | None, str, str]] = []
    default = now_us()
    for n, item in enumerate(items):
        where = f"metric {n}"
        if not isinstance(item, dict) or not isinstance(item.get("fields"), dict):
            bad.append((where, None, "expected a metric {name, tags, fields, timestamp}", json.dumps(item)))
            continue
        name, tags = item.get("name"), item.get("tags") or {}
        if (
            not isinstance(name, str)
            or not _ok(name)
            or not isinstance(tags, dict)
            or not all(_ok(v) for v in tags.values())
        ):
            reason = "name and tag values must be letters, digits and _ . : -"
            bad.append((where, "name", reason, json.dumps(item)))
            continue
        stamp = item.get("timestamp")
        if stamp is None:
            t = default
        elif isinstance(stamp, int | float) and not isinstance(stamp, bool) and math.isfinite(stamp):
            t = round(stamp * scale)
        else:
            bad.append((where, "timestamp", f"{stamp!r} is not a number", json.dumps(item)))
            continue
        if not in_point_range(t):
            bad.append((where, "timestamp", BAD_TS, json.dumps(item)))
            continue
        tag_values = [str(tags[k]) for k in sorted(tags)]
        for field, value in item["fields"].items():
            if isinstance(value, bool):
                value = float(value)
            if not _ok(field):
                bad.append(
                    (where, str(field), "a field name must be letters, digits and _ . : -", json.dumps(item))
                )
            elif isinstance(value, str):
                bad.append((where, field, "a string field; only numbers become points", json.dumps(item)))
            elif not isinstance(value, int | float) or not math.isfinite(float(value)):
                bad.append((where, field, f"{value!r} is not a finite number", json.dumps(item)))
            else:
                ids.append(series_name(db, name, tag_values, field))
                ts.append(t)
                values.append(float(value))
    sid = pa.array(ids, pa.string()).dictionary_encode().cast(SERIES_ID_TYPE)
    points = pa.Table.from_arrays(
        [sid, from_us_array(np.asarray(ts, dtype=np.int64)), pa.array(values, pa.float64())],
        schema=POINT_SCHEMA,
    )
    return points, quarantine_records(
        source, [b[0] for b in bad], [b[1] for b in bad], [b[2] for b in bad], [b[3] for b in bad]
    )


def land_pushed(lake: Lake, catalog: Catalog, db: str, points: pa.Table, quarantine: pa.Table) -> Landed:
    """Land ``points`` in ``raw/<source>_<measurement>`` per measurement and ``quarantine`` in
    ``quarantine/<db>_push``; durable when it returns."""
    problem = None
    if quarantine.num_rows:
        lake.write_quarantine(dataset_name(db, "push"), quarantine)
        first = quarantine.slice(0, 1).to_pylist()[0]
        field = f"{first['field']}: " if first["field"] else ""
        problem = f"{first['location']}: {field}{first['reason']}"
    landed = 0
    datasets: list[str] = []
    if points.num_rows:
        ids = points.column("series_id").combine_chunks()
        if not pa.types.is_dictionary(ids.type):
            ids = pc.dictionary_encode(ids)
        names = ids.dictionary.to_pylist()
        parts = [SeriesId.parse(name) for name in names]
        per_entry = [dataset_name(p.source, p.measurement) for p in parts]
        chosen = np.asarray(per_entry, dtype=object)[ids.indices.to_numpy(zero_copy_only=False)]
        for dataset in sorted(set(per_entry)):
            mask = pa.array(chosen == dataset)
            landed += land(lake, catalog, "raw", dataset, points.filter(mask))
            datasets.append(dataset)
    return Landed(landed, quarantine.num_rows, datasets, problem)
