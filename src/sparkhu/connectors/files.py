"""The file source: CSV and Parquet files, long or wide, resumable in the middle of a file.

Layouts: **long** has ``series_id``, a timestamp column and ``value``; **wide** has a timestamp
column (``UNIX_TS`` in AMPds2) and one numeric column per field, whose series id is
``series_prefix + column + field_suffix`` (``ampds2/electricity/`` + ``WHE`` + ``.P``; without a
prefix the columns must be whole series ids).
Timestamps are integers (or decimals) in ``ts_unit`` ``s``/``ms``/``us`` since 1970 UTC, or
ISO-8601 (``iso``; naive means UTC); Parquet timestamp columns are taken as they are.

CSV is read in chunks of ``batch_rows`` lines cut at line ends (:mod:`~sparkhu.connectors.lines`:
``\n``, ``\r\n`` or a lone ``\r``; a line longer than ``max_line_bytes`` is quarantined unread, so
memory stays bounded), each parsed by pyarrow's multithreaded reader with typed columns. Only when a
chunk holds something bad is it parsed again the careful way: its lines are split with numpy, lines
with the wrong number of fields are set aside, the rest is read as text and each column validated
vectorised, so every bad record is quarantined with its file, ``line N`` (1-based, the header is
line 1) and field, while every valid value — the other fields of the same line too — is kept. Empty
fields and ``NaN``/``NA``/``null`` are *missing* (dropped, not bad); ``abc`` or ``inf`` are bad.
Quoted fields holding the delimiter are not supported (numeric files do not need them). A header
that is not UTF-8 stops the file with an error naming it.

The position is per file, ``{"files": {path: {size, mtime_ns, offset, rows_done, done}}}``:
a restart skips finished files, resumes a file at the byte ``offset`` after its last batch,
and reads a file again in full when its size or modification time changed.

>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp, "Electricity_P.csv")
...     _ = path.write_text("UNIX_TS,WHE,FGE\\n0,10,1\\n60,,abc\\n")
...     bad = []
...     source = FileSource("f", path, series_prefix="home/power/", field_suffix=".P")
...     batches = list(source.read(None, bad.append))
>>> batches[0][0].num_rows, bad[0]["location"][0].as_py(), bad[0]["field"][0].as_py()
(2, 'line 3', 'FGE')
>>> batches[-1][1]["files"][str(path)]["done"]
True
"""

from __future__ import annotations

import glob
import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import Field

from sparkhu.connectors.base import Position, QuarantineFn, Source, SourceSpec
from sparkhu.connectors.columns import NULL_VALUES, Layout, to_points
from sparkhu.connectors.lines import MAX_LINE_BYTES, open_lines, pieces
from sparkhu.errors import ConfigError, ConnectorError
from sparkhu.series import QUARANTINE_SCHEMA, empty_points, is_series_id, quarantine_records
from sparkhu.timeaxis import EPOCH_UNITS_US

_TS_NAMES = ("unix_ts", "ts", "timestamp", "time", "event_time", "datetime")
_CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


class FileSource(Source):
    """CSV/Parquet files (a path, a folder, a glob or a list of them) read as points.

    ``batch_rows`` is the number of input lines (wide: timestamps) per batch; a CSV line longer
    than ``max_line_bytes`` is quarantined without being read into memory.
    """

    def __init__(
        self,
        name: str,
        paths: str | Path | Sequence[str | Path],
        *,
        format: str = "auto",
        layout: str = "auto",
        series_prefix: str = "",
        field_suffix: str = "",
        ts_column: str | None = None,
        ts_unit: str = "s",
        batch_rows: int = 100_000,
        delimiter: str = ",",
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if format not in ("auto", "csv", "parquet"):
            raise ConfigError(f"file source {name}: format={format!r}; expected auto, csv or parquet")
        if layout not in ("auto", "long", "wide"):
            raise ConfigError(f"file source {name}: layout={layout!r}; expected auto, long or wide")
        if ts_unit not in (*EPOCH_UNITS_US, "iso"):
            raise ConfigError(f"file source {name}: ts_unit={ts_unit!r}; expected s, ms, us or iso")
        if batch_rows < 1 or len(delimiter) != 1:
            raise ConfigError(f"file source {name}: batch_rows must be ≥ 1 and delimiter one character")
        if max_line_bytes < 1:
            raise ConfigError(f"file source {name}: max_line_bytes must be ≥ 1, got {max_line_bytes}")
        self.name = name
        self.paths = [paths] if isinstance(paths, str | Path) else list(paths)
        self.format, self.layout, self.ts_unit = format, layout, ts_unit
        self.series_prefix, self.field_suffix, self.ts_column = series_prefix, field_suffix, ts_column
        self.batch_rows, self.delimiter, self.max_line_bytes = batch_rows, delimiter, max_line_bytes

    def files(self) -> list[Path]:
        """The files the paths name now: globs expanded, folders listed, sorted, no repeats."""
        found: list[Path] = []
        for entry in map(str, self.paths):
            if glob.has_magic(entry):
                found += [Path(p) for p in sorted(glob.glob(entry, recursive=True)) if Path(p).is_file()]
            elif Path(entry).is_dir():
                suffixes = _CSV_SUFFIXES | _PARQUET_SUFFIXES
                found += sorted(
                    p for p in Path(entry).iterdir() if p.is_file() and p.suffix.lower() in suffixes
                )
            elif Path(entry).is_file():
                found.append(Path(entry))
            else:
                raise ConnectorError(f"file source {self.name}: {entry}: no such file or folder")
        return list(dict.fromkeys(p.absolute() for p in found))

    def read(
        self, position: Mapping[str, Any] | None, quarantine: QuarantineFn
    ) -> Iterator[tuple[pa.Table, Position]]:
        """Yield each file's batches after ``position``; bad records go to ``quarantine`` first."""
        state: dict[str, dict[str, Any]] = dict((position or {}).get("files", {}))
        for path in self.files():
            key = str(path)
            try:
                stat = path.stat()
            except OSError as exc:
                raise ConnectorError(f"file source {self.name}: cannot read {path}: {exc.strerror}") from exc
            seen = state.get(key)
            offset = rows_done = 0
            if seen and seen.get("size") == stat.st_size and seen.get("mtime_ns") == stat.st_mtime_ns:
                if seen.get("done"):
                    continue
                offset, rows_done = int(seen.get("offset", 0)), int(seen.get("rows_done", 0))
            for batch, bad, at, lines, done in self._batches(path, offset, rows_done):
                if bad is not None and bad.num_rows:
                    quarantine(bad)
                state[key] = {
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "offset": at,
                    "rows_done": lines,
                    "done": done,
                }
                yield batch, {"files": dict(state)}

    def _batches(
        self, path: Path, offset: int, rows_done: int
    ) -> Iterator[tuple[pa.Table, pa.Table | None, int, int, bool]]:
        fmt = self.format
        if fmt == "auto":
            suffix = path.suffix.lower()
            fmt = "csv" if suffix in _CSV_SUFFIXES else "parquet" if suffix in _PARQUET_SUFFIXES else ""
            if not fmt:
                raise ConnectorError(
                    f"{path}: cannot tell CSV from Parquet by its name; set format=csv or parquet"
                )
        try:
            if fmt == "parquet":
                yield from self._parquet(path, rows_done)
            else:
                with open_lines(path) as f:
                    yield from self._csv(path, f, offset, rows_done)
        except OSError as exc:
            raise ConnectorError(f"file source {self.name}: cannot read {path}: {exc}") from exc

    # ---- layout -------------------------------------------------------------------------------
    def _layout(self, names: list[str], path: Path) -> Layout:
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConnectorError(f"{path}: column(s) {', '.join(twice)} appear more than once in the header")
        lower = {n.lower(): n for n in names}
        long = self.layout == "long" or (self.layout == "auto" and "series_id" in names and "value" in names)
        ts = self.ts_column or next((lower[n] for n in _TS_NAMES if n in lower), None)
        if ts is None and not long:
            ts = names[0]
        if ts not in names or (long and not {"series_id", "value"} <= set(names)):
            want = f"series_id, {ts or 'ts'}, value" if long else f"timestamp column {ts!r}"
            raise ConnectorError(f"{path}: header {','.join(names)} lacks {want}; set ts_column or layout")
        if long:
            return Layout(names, ts, True, [], pa.array([], pa.string()))
        fields = [n for n in names if n != ts]
        ids = [f"{self.series_prefix}{f}{self.field_suffix}" for f in fields]
        wrong = [f for f, sid in zip(fields, ids, strict=True) if not is_series_id(sid)]
        if not fields or wrong:
            what = f"column(s) {', '.join(map(repr, wrong))} give" if wrong else "no value column gives"
            raise ConnectorError(
                f"{path}: {what} no valid series id with prefix {self.series_prefix!r}; "
                "rename the columns or fix series_prefix/field_suffix"
            )
        return Layout(names, ts, False, fields, pa.array(ids, pa.string()))

    # ---- CSV ----------------------------------------------------------------------------------
    def _csv(
        self, path: Path, f: BinaryIO, offset: int, rows_done: int
    ) -> Iterator[tuple[pa.Table, pa.Table | None, int, int, bool]]:
        header = f.readline(self.max_line_bytes + 1)
        if not header.strip():
            yield empty_points(), None, len(header), 0, True
            return
        if len(header) > self.max_line_bytes:
            raise ConnectorError(f"{path}:1: the header is longer than {self.max_line_bytes:,} bytes")
        try:
            header.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConnectorError(
                f"{path}:1: the header is not UTF-8 text (byte 0x{header[exc.start]:02x} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from None
        try:
            names = pa_csv.read_csv(
                io.BytesIO(header.removeprefix(b"\xef\xbb\xbf")),
                parse_options=pa_csv.ParseOptions(delimiter=self.delimiter),
            ).column_names
        except pa.ArrowInvalid as exc:
            raise ConnectorError(f"{path}:1: unreadable header: {exc}") from exc
        layout = self._layout(names, path)
        offset = max(offset, len(header))
        f.seek(offset)
        for piece in pieces(f, self.batch_rows, max_line=self.max_line_bytes):
            if piece.too_long:
                points, bad = (
                    empty_points(),
                    quarantine_records(
                        str(path),
                        [f"line {2 + rows_done}"],
                        [None],
                        [f"line of {piece.size:,} bytes is longer than {self.max_line_bytes:,} bytes"],
                        [piece.data.decode("utf-8", "replace")],
                    ),
                )
            else:
                points, bad = self._parse_chunk(path, piece.data, layout, first_line=2 + rows_done)
            offset, rows_done = offset + piece.size, rows_done + piece.lines
            yield points, bad, offset, rows_done, piece.last
        if rows_done == 0:
            yield empty_points(), None, offset, 0, True

    def _types(self, layout: Layout, text: bool) -> dict[str, pa.DataType]:
        if text:
            return dict.fromkeys(layout.names, pa.string())
        ts_type = pa.string() if self.ts_unit == "iso" else pa.int64()
        if layout.long:
            return {
                "series_id": pa.dictionary(pa.int32(), pa.string()),
                layout.ts: ts_type,
                "value": pa.float64(),
            }
        return {layout.ts: ts_type, **dict.fromkeys(layout.fields, pa.float64())}

    def _read_csv(self, data: bytes, layout: Layout, text: bool) -> pa.Table:
        """``data`` parsed with the layout's columns; ``ArrowInvalid`` for a row of the wrong width.

        No ``invalid_row_handler``: pyarrow hands it the row as UTF-8 text, which a row of other
        bytes cannot be; the careful path finds such rows itself.
        """
        return pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=layout.names, use_threads=True, block_size=1 << 22),
            parse_options=pa_csv.ParseOptions(delimiter=self.delimiter),
            convert_options=pa_csv.ConvertOptions(
                column_types=self._types(layout, text),
                null_values=NULL_VALUES,
                strings_can_be_null=True,
            ),
        )

    def _parse_chunk(
        self, path: Path, chunk: bytes, layout: Layout, first_line: int
    ) -> tuple[pa.Table, pa.Table | None]:
        try:
            table = self._read_csv(chunk, layout, text=False)
            points, bad = to_points(table, layout, self.ts_unit, str(path))
            if not bad.rows:
                return points, None
        except pa.ArrowInvalid:
            pass
        # the careful way: split lines, set aside wrong field counts, validate text columns
        arr = np.frombuffer(chunk, np.uint8)
        newlines = np.flatnonzero(arr == 10)
        starts = np.concatenate([[0], newlines + 1])
        ends = np.concatenate([newlines, [len(arr)]])
        if starts[-1] == len(arr):
            starts, ends = starts[:-1], ends[:-1]
        stripped = ends - ((ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13))
        delims = np.flatnonzero(arr == ord(self.delimiter))
        count = np.searchsorted(delims, stripped) - np.searchsorted(delims, starts) + 1
        blank = stripped == starts
        wrong = ~blank & (count != len(layout.names))
        for i in np.unique(np.searchsorted(starts, np.flatnonzero(arr >= 0x80), side="right") - 1):
            try:
                chunk[starts[i] : stripped[i]].decode("utf-8")
            except UnicodeDecodeError:  # make its odd bytes '?': the cells holding them turn bad
                arr = arr if arr.flags.writeable else arr.copy()
                line = arr[starts[i] : stripped[i]]
                line[line >= 0x80] = ord("?")
        keep = ~blank & ~wrong
        line_no = first_line + np.arange(len(starts))

        def text(i: int) -> str:
            return chunk[starts[i] : stripped[i]].decode("utf-8", "replace")

        rows: list[int] = []
        fields: list[str | None] = []
        reasons: list[str] = []
        for i in np.flatnonzero(wrong):
            rows.append(int(i))
            fields.append(None)
            reasons.append(f"expected {len(layout.names)} fields, got {count[i]}")
        full = np.minimum(ends + 1, len(arr)) - starts
        kept, table, unparsed = self._read_lines(arr, full, np.flatnonzero(keep), layout)
        for i in unparsed:
            rows.append(int(i))
            fields.append(None)
            quotes = arr[starts[i] : stripped[i]].tolist().count(ord('"'))
            reasons.append("unbalanced quote" if quotes % 2 else "cannot parse as CSV")
        points, bad = to_points(table, layout, self.ts_unit, str(path))
        rows += [int(kept[r]) for r in bad.rows]
        fields += bad.fields
        reasons += bad.reasons
        order = np.argsort(rows, kind="stable")
        records = quarantine_records(
            str(path),
            [f"line {line_no[rows[o]]}" for o in order],
            [fields[o] for o in order],
            [reasons[o] for o in order],
            [text(rows[o]) for o in order],
        )
        return points, records

    def _read_lines(
        self, arr: np.ndarray, full: np.ndarray, lines: np.ndarray, layout: Layout
    ) -> tuple[np.ndarray, pa.Table, list[int]]:
        """Parse ``lines`` (indices; ``full``: each line's bytes in ``arr``) as text columns.

        Returns the lines parsed, in order, their table (one row per line) and the lines that do
        not parse as one row alone (an unbalanced quote swallowing the next lines, say): found by
        halving, so a clean run of lines is parsed at once and a bad line costs a few retries.
        """
        mask = np.zeros(len(full), dtype=bool)
        mask[lines] = True
        data = arr[np.repeat(mask, full)].tobytes() if len(lines) else b"\n"
        try:
            table = self._read_csv(data, layout, text=True)
            if table.num_rows == len(lines):
                return lines, table, []
        except pa.ArrowInvalid:
            pass
        if len(lines) == 1:
            return lines[:0], self._read_csv(b"\n", layout, text=True), [int(lines[0])]
        half = len(lines) // 2
        first, second = (
            self._read_lines(arr, full, lines[:half], layout),
            self._read_lines(arr, full, lines[half:], layout),
        )
        tables = pa.concat_tables([first[1], second[1]])
        return np.concatenate([first[0], second[0]]), tables, first[2] + second[2]

    # ---- Parquet ------------------------------------------------------------------------------
    def _parquet(
        self, path: Path, rows_done: int
    ) -> Iterator[tuple[pa.Table, pa.Table | None, int, int, bool]]:
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ConnectorError(f"{path}: not a readable Parquet file: {exc}") from exc
        layout = self._layout(pf.schema_arrow.names, path)
        total, start = pf.metadata.num_rows, 0
        if total == 0:
            yield empty_points(), None, 0, 0, True
            return
        for group in range(pf.num_row_groups):
            size = pf.metadata.row_group(group).num_rows
            if start + size > rows_done:
                table = pf.read_row_group(group).slice(max(0, rows_done - start))
                for at in range(0, table.num_rows, self.batch_rows):
                    part = table.slice(at, self.batch_rows)
                    points, bad = to_points(part, layout, self.ts_unit, str(path))
                    records = None
                    if bad.rows:
                        cells = [
                            _cell_text(part.column(f or layout.ts)[r])
                            for r, f in zip(bad.rows, bad.fields, strict=True)
                        ]
                        records = quarantine_records(
                            str(path),
                            [f"row {rows_done + r + 1}" for r in bad.rows],
                            bad.fields,
                            bad.reasons,
                            cells,
                        )
                    rows_done += part.num_rows
                    yield points, records, rows_done, rows_done, rows_done >= total
            start += size


def _cell_text(cell: pa.Scalar) -> str:
    """A Parquet cell as text for the quarantine (a timestamp beyond ``datetime`` as its raw number)."""
    try:
        return str(cell.as_py())
    except (OverflowError, ValueError):
        return f"{cell.value} ({cell.type})"


def read_file(path: str | Path, **options: Any) -> tuple[pa.Table, pa.Table]:
    """Read one whole file: its points and its quarantined records (options as :class:`FileSource`)."""
    if not Path(path).is_file():
        raise ConnectorError(f"{path}: no such file")
    bad: list[pa.Table] = []
    points = read_all(FileSource(f"file:{path}", [Path(path)], **options), bad.append)
    return points, pa.concat_tables([QUARANTINE_SCHEMA.empty_table(), *bad])


def read_all(source: Source, quarantine: QuarantineFn | None = None) -> pa.Table:
    """Every point of ``source`` from the beginning, as one table (dictionaries unified)."""
    batches = [batch for batch, _ in source.read(None, quarantine or (lambda _records: None))]
    return pa.concat_tables([empty_points(), *batches]).unify_dictionaries().combine_chunks()


class FilesSettings(SourceSpec):
    """How to read CSV/Parquet files as points: what file-reading sources (file, replay) share."""

    path: str
    """A file, a folder or a glob (``data/*.csv``)."""
    format: Literal["auto", "csv", "parquet"] = "auto"
    layout: Literal["auto", "long", "wide"] = "auto"
    field_suffix: str = ""
    """Appended to wide-layout column names: ``WHE`` + ``.P`` → field ``WHE.P``."""
    ts_column: str | None = None
    ts_unit: Literal["s", "ms", "us", "iso"] = "s"

    def files(self) -> FileSource:
        """The files as a :class:`FileSource` named after this entry."""
        return FileSource(
            self.name,
            self.path,
            format=self.format,
            layout=self.layout,
            series_prefix=f"{self.source}/{self.measurement}/",
            field_suffix=self.field_suffix,
            ts_column=self.ts_column,
            ts_unit=self.ts_unit,
        )


class FileSourceSettings(FilesSettings):
    """A ``[[sources]]`` entry of ``kind = "file"``: CSV/Parquet files, watched for new ones.

    >>> spec = FileSourceSettings(name="meters", kind="file", path="data/*.csv", source="home",
    ...                           measurement="power", layout="wide", field_suffix=".P")
    >>> spec.open().name, spec.dataset
    ('meters', 'home_power')
    """

    kind: Literal["file"] = "file"
    repeat_s: float | None = Field(default=30.0, gt=0.0)
    """Seconds between looks for new files while the platform runs; none: read once."""

    def open(self) -> FileSource:
        """The connector this entry describes."""
        return self.files()
