"""The catalog's records and the checks on what callers hand it.

:class:`SeriesInfo` and :class:`RunRecord` are what :class:`~sparkhu.storage.catalog.Catalog`
takes and returns; the helpers turn database rows into them and reject malformed arguments
with an :class:`~sparkhu.errors.InputError` that names the field.

>>> SeriesInfo.of("ampds2/electricity/WHE.P", unit="W").measurement
'electricity'
>>> check_limit(0)
Traceback (most recent call last):
...
sparkhu.errors.InputError: limit: must be a positive integer, got 0
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from sparkhu.errors import InputError
from sparkhu.series import SeriesId
from sparkhu.timeaxis import from_us

RUN_STATUSES = ("running", "success", "failed", "skipped")
EXTRA_KEY = "_extra"
"""The key of ``series.tags`` that holds :attr:`SeriesInfo.extra` (no schema change needed)."""


@dataclass
class SeriesInfo:
    """What the catalog knows about one series."""

    series_id: str
    source: str
    measurement: str
    field: str
    unit: str | None = None
    period_s: float | None = None  # sampling period in seconds, None = not decided
    regular: bool | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    count: int = 0
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    value_min: float | None = None  # valid range, used by validation
    value_max: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Metadata the pipeline recorded (seasonal periods, normalisation parameters...); stored
    in the ``tags`` JSON under the reserved key :data:`EXTRA_KEY`."""
    description: str | None = None
    """Free-form text (edited with :meth:`~sparkhu.storage.catalog.Catalog.describe_series`)."""

    @classmethod
    def of(cls, series_id: str, **kwargs: Any) -> SeriesInfo:
        """A SeriesInfo whose source, measurement and field come from the id."""
        sid = SeriesId.parse(series_id)
        return cls(series_id, sid.source, sid.measurement, sid.field, **kwargs)


@dataclass
class RunRecord:
    """One run of a task (or connector, training...) for one interval and, optionally, one series."""

    run_id: str
    kind: str  # "pipeline", "connector", "train", "retention", ...
    name: str  # task or connector name
    status: str  # "running", "success", "failed", "skipped"
    started_at: datetime
    finished_at: datetime | None = None
    series_id: str | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


def series_info(row: RowMapping) -> SeriesInfo:
    """A :class:`SeriesInfo` from a row of the ``series`` table."""
    return SeriesInfo(
        series_id=row["series_id"],
        source=row["source"],
        measurement=row["measurement"],
        field=row["field"],
        unit=row["unit"],
        period_s=row["period_s"],
        regular=row["regular"],
        first_ts=from_us(row["first_ts"]),
        last_ts=from_us(row["last_ts"]),
        count=row["count"],
        tags={k: v for k, v in (row["tags"] or {}).items() if k != EXTRA_KEY},
        value_min=row["value_min"],
        value_max=row["value_max"],
        extra=dict((row["tags"] or {}).get(EXTRA_KEY) or {}),
        description=row.get("description"),
    )


def run_record(row: RowMapping) -> RunRecord:
    """A :class:`RunRecord` from a row of the ``runs`` table."""
    return RunRecord(
        run_id=row["run_id"],
        kind=row["kind"],
        name=row["name"],
        status=row["status"],
        started_at=from_us(row["started_at"]),
        finished_at=from_us(row["finished_at"]),
        series_id=row["series_id"],
        interval_start=from_us(row["interval_start"]),
        interval_end=from_us(row["interval_end"]),
        rows_in=row["rows_in"],
        rows_out=row["rows_out"],
        params=row["params"],
        error=row["error"],
    )


def partition_row(zone: str, dataset: str, part: Any, now: int) -> dict[str, Any]:
    """A ``partitions`` row from a PartitionInfo (or any object or mapping with its fields)."""

    def get(name: str) -> Any:
        return part.get(name) if isinstance(part, Mapping) else getattr(part, name, None)

    for name, expected in (("zone", zone), ("dataset", dataset)):
        given = get(name)
        if given is not None and given != expected:
            raise InputError(
                f"partition {get('key')!r} belongs to {name} {given!r}, not {expected!r}", field=name
            )
    try:
        return {
            "zone": zone,
            "dataset": dataset,
            "key": check_text(get("key"), "partition key"),
            "files": int(get("files")),
            "rows": int(get("rows")),
            "bytes": int(get("bytes")),
            "updated_at": now,
        }
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"partition {part!r} of {zone}/{dataset} needs integer files, rows and bytes", field="partitions"
        ) from exc


def check_text(value: Any, what: str) -> str:
    """``value`` if it is a non-empty string; else :class:`InputError` naming ``what``."""
    if not isinstance(value, str) or not value:
        raise InputError(f"must be a non-empty string, got {value!r}", field=what)
    return value


def check_status(status: str) -> None:
    """Reject a run status outside :data:`RUN_STATUSES`."""
    if status not in RUN_STATUSES:
        raise InputError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")


def check_limit(limit: int) -> None:
    """Reject a query limit that is not a positive integer."""
    if not isinstance(limit, int) or limit < 1:
        raise InputError(f"must be a positive integer, got {limit!r}", field="limit")


def check_json(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A plain JSON copy of the mapping ``value``; :class:`InputError` if it is not one."""
    if not isinstance(value, Mapping):
        raise InputError(f"must be a mapping, got {type(value).__name__}", field=what)
    try:
        return json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as exc:
        raise InputError(f"not JSON-serialisable: {exc}", field=what) from exc


TAG_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
"""A tag key: a letter, then letters, digits, ``_ . -`` (64 characters at most)."""
UNSET: Any = object()
"""A field :class:`SeriesMeta` leaves as it is in the catalog."""


@dataclass
class SeriesMeta:
    """The editable metadata of one series, as an import or an edit hands it to the catalog.

    A field left :data:`UNSET` keeps its stored value; ``tags`` replaces the series' tags,
    ``upstream`` its declared upstream series. ``origin`` names the record in messages
    (``meta.csv:3``).

    >>> SeriesMeta("a/b/c", description="kitchen plug", origin="meta.json:1").tags is UNSET
    True
    """

    series_id: str
    description: Any = UNSET
    tags: Any = UNSET
    unit: Any = UNSET
    upstream: Any = UNSET
    origin: str = ""


def check_tags(tags: Any, what: str) -> dict[str, str]:
    """``tags`` as ``{key: value}`` strings; :class:`InputError` naming ``what`` and the bad tag.

    >>> check_tags({"room": "kitchen", "floor": 1}, "x")
    {'room': 'kitchen', 'floor': '1'}
    """
    if not isinstance(tags, Mapping):
        raise InputError(f"tags must be a mapping of key to value, got {type(tags).__name__}", field=what)
    out = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not TAG_KEY_RE.match(key) or key == EXTRA_KEY:
            raise InputError(
                f"tag key {key!r} is not a name (a letter, then letters, digits, _ . -)", field=what
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
            raise InputError(f"tag {key!r} needs a non-empty text or number value, got {value!r}", field=what)
        out[key] = str(value)
    return out


_WORD_RE = re.compile(r"[0-9a-z]+")


def words(text: str | None) -> list[str]:
    """The distinct words of ``text`` for the text index: lower case runs of letters and digits (64
    characters at most), in order.

    >>> words("Whole-house meter, SN0042 (whole)")
    ['whole', 'house', 'meter', 'sn0042']
    """
    return list(dict.fromkeys(w[:64] for w in _WORD_RE.findall((text or "").lower())))
