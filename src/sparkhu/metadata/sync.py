"""Series metadata in and out: CSV and JSON files, and rows of a SQL query.

An operational database can stay the source of truth of descriptions, units, tags and declared
upstream series: ``sparkhu meta import`` reads its export (or queries it directly) and applies it
all or nothing (:meth:`~sparkhu.storage.catalog.Catalog.apply_series_meta`); ``sparkhu meta
export`` writes the catalog's metadata in the same shape.

Both file formats carry the same fields: ``series_id`` (required), ``description``, ``unit``,
``tags`` and ``upstream``. In JSON, a list of objects (or ``{"series": [...]}``) with ``tags`` an
object and ``upstream`` a list. In CSV (and SQL rows), ``tags`` is ``key=value;key=value`` and
``upstream`` is ``id;id`` — or each tag its own ``tag.<key>`` column. A field that is absent is
left as it is; a present but empty one is cleared.

>>> row = {"series_id": "a/b/c", "tags": "room=kitchen;floor=1", "upstream": ""}
>>> records = parse_rows([row], "m.csv", first_line=2)
>>> records[0].tags, records[0].upstream, records[0].origin
({'room': 'kitchen', 'floor': '1'}, [], 'm.csv:2')
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from sparkhu.errors import BackendUnavailable, InputError
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.catalog.records import UNSET, SeriesMeta

FIELDS = ("series_id", "description", "unit", "tags", "upstream")
TAG_COLUMN = "tag."
FORMATS = ("csv", "json")


def file_format(path: Path, given: str | None = None) -> str:
    """``csv`` or ``json``: ``given``, else from the file's suffix; :class:`InputError` otherwise."""
    fmt = (given or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(
            f"cannot tell the format of {path.name}: name it .csv or .json, or pass --format",
            source=str(path),
        )
    return fmt


def read_file(path: Path, fmt: str | None = None) -> list[SeriesMeta]:
    """The metadata records of a CSV or JSON file; :class:`InputError` naming the file, line and field."""
    fmt = file_format(path, fmt)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=str(path)) from exc
    return parse_json(text, str(path)) if fmt == "json" else parse_csv(text, str(path))


def parse_csv(text: str, where: str) -> list[SeriesMeta]:
    """Records of CSV ``text`` (a header line, then one series a line)."""
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = reader.fieldnames or []
        if "series_id" not in header:
            raise InputError("the header has no series_id column", source=where, line=1)
        rows = []
        for row in reader:
            if None in row:
                raise InputError(
                    f"{len(row[None]) + len(header)} cells for {len(header)} columns",
                    source=where,
                    line=reader.line_num,
                )
            rows.append(dict(row))
    except csv.Error as exc:
        raise InputError(f"not valid CSV: {exc}", source=where, line=reader.line_num) from exc
    return parse_rows(rows, where, first_line=2)


def parse_json(text: str, where: str) -> list[SeriesMeta]:
    """Records of JSON ``text``: a list of objects, or ``{"series": [...]}``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", source=where, line=exc.lineno) from exc
    if isinstance(doc, dict) and isinstance(doc.get("series"), list):
        doc = doc["series"]
    if not isinstance(doc, list):
        raise InputError('expected a list of series objects, or {"series": [...]}', source=where)
    records = []
    for n, item in enumerate(doc, start=1):
        origin = f"{where}[{n}]"
        if not isinstance(item, dict):
            raise InputError(f"series record {n} is a {type(item).__name__}, not an object", source=origin)
        records.extend(parse_rows([item], where, origin=origin))
    return records


def parse_rows(
    rows: Iterable[Mapping[str, Any]], where: str, *, first_line: int | None = None, origin: str | None = None
) -> list[SeriesMeta]:
    """Records of mappings (CSV rows, JSON objects, SQL rows); ``first_line``: the line of the first row."""
    out = []
    for n, row in enumerate(rows):
        at = origin or (f"{where}:{first_line + n}" if first_line is not None else f"{where}[{n + 1}]")
        unknown = [k for k in row if k not in FIELDS and not str(k).startswith(TAG_COLUMN)]
        if unknown:
            raise InputError(
                f"unknown field {unknown[0]!r}; expected {', '.join(FIELDS)} or {TAG_COLUMN}<key> columns",
                source=at,
            )
        sid = row.get("series_id")
        if not isinstance(sid, str) or not sid.strip():
            raise InputError("series_id is missing", source=at, field="series_id")
        record = SeriesMeta(sid.strip(), origin=at)
        for name in ("description", "unit"):
            if name in row:
                value = row[name]
                setattr(record, name, None if value in (None, "") else value)
        tag_columns = {k[len(TAG_COLUMN) :]: v for k, v in row.items() if str(k).startswith(TAG_COLUMN)}
        if "tags" in row or tag_columns:
            tags = _tags(row.get("tags"), at)
            tags.update({k: v for k, v in tag_columns.items() if v not in (None, "")})
            record.tags = tags
        if "upstream" in row:
            record.upstream = _ids(row["upstream"], at)
        out.append(record)
    return out


def _tags(value: Any, at: str) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str):
        raise InputError(
            f"tags must be key=value;key=value or an object, got {value!r}", source=at, field="tags"
        )
    tags = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        key, sep, tag = part.partition("=")
        if not sep:
            raise InputError(f"tag {part.strip()!r} has no '=': write key=value", source=at, field="tags")
        tags[key.strip()] = tag.strip()
    return tags


def _ids(value: Any, at: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InputError(f"upstream must be id;id or a list of ids, got {value!r}", source=at, field="upstream")


def read_sql(uri: str, query: str) -> list[SeriesMeta]:
    """Records of the rows ``query`` returns from the database at ``uri`` (any SQLAlchemy URL);
    its columns are the fields (``SELECT id AS series_id, note AS description ...``)."""
    where = "query"
    try:
        engine = sa.create_engine(uri)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise InputError(f"not a database URL: {exc}", source=uri) from exc
    try:
        with engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(sa.text(query)).mappings()]
    except SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        if isinstance(exc, sa.exc.OperationalError) and "connect" in message.lower():
            raise BackendUnavailable(engine.url.render_as_string(hide_password=True), message) from exc
        raise InputError(f"the query failed: {message}", source=where) from exc
    finally:
        engine.dispose()
    return parse_rows(rows, where)


def import_records(catalog: Catalog, records: Sequence[SeriesMeta]) -> int:
    """Apply ``records`` all or nothing; returns how many series changed."""
    return catalog.apply_series_meta(records)


def export_rows(catalog: Catalog, *, prefix: str = "") -> list[dict[str, Any]]:
    """The catalog's series metadata (with ``prefix``), as :func:`write_file` writes it."""
    return catalog.export_series_meta(prefix=prefix)


def write_file(rows: Sequence[Mapping[str, Any]], path: Path, fmt: str | None = None) -> None:
    """Write rows of :func:`export_rows` as CSV or JSON (what :func:`read_file` reads back)."""
    fmt = file_format(path, fmt)
    if fmt == "json":
        text = json.dumps({"series": list(rows)}, indent=2, ensure_ascii=False) + "\n"
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    "series_id": row["series_id"],
                    "description": row.get("description") or "",
                    "unit": row.get("unit") or "",
                    "tags": ";".join(f"{k}={v}" for k, v in sorted((row.get("tags") or {}).items())),
                    "upstream": ";".join(row.get("upstream") or []),
                }
            )
        text = out.getvalue()
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write it: {exc.strerror}", source=str(path)) from exc


__all__ = [
    "UNSET",
    "export_rows",
    "import_records",
    "parse_csv",
    "parse_json",
    "read_file",
    "read_sql",
    "write_file",
]
