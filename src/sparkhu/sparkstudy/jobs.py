"""The tuning study's two jobs over a text file of lines, each in three forms with the same counts.

Jobs: ``first_char`` counts lines by their first character (an empty line counts under
``""``); ``passwords`` counts strong passwords (the rule of :mod:`sparkhu.sparkstudy.words`).

Forms: ``udf`` is the original's row-at-a-time Python UDF on Spark; ``vectorised`` is Spark SQL
expressions (regular expressions for the classes, the dictionary as a broadcast anti-join);
``embedded`` runs without Spark, on Arrow buffers with numpy (a byte-class table reduced per
line, the dictionary as an Arrow ``is_in``), streaming the file in blocks.

Lines are split on ``\\n`` with a trailing ``\\r`` dropped, as Spark's text source reads them.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp, "p.txt")
...     _ = path.write_text("Tr0ub4dor&3x\\nSunshine#2024\\n\\nabc\\n")
...     run_embedded("passwords", str(path)).counts, run_embedded("first_char", str(path)).counts
({'strong': 1}, {'': 1, 'S': 1, 'T': 1, 'a': 1})
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from sparkhu.errors import InputError, NotFoundError
from sparkhu.sparkstudy.words import (
    DIGIT_RE,
    LOWER_RE,
    MAX_LEN,
    MIN_LEN,
    NOT_LETTER_RE,
    PUNCT_RE,
    UPPER_RE,
    dictionary_array,
    dictionary_table,
    is_strong,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JOBS = ("first_char", "passwords")
FORMS = ("udf", "vectorised", "embedded")
BLOCK_BYTES = 64 * 2**20

# One bit per character class for every byte value (non-ASCII bytes are in no class).
_UPPER_BIT, _LOWER_BIT, _DIGIT_BIT, _PUNCT_BIT = 1, 2, 4, 8
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[ord("A") : ord("Z") + 1] = _UPPER_BIT
_CLASS[ord("a") : ord("z") + 1] = _LOWER_BIT
_CLASS[ord("0") : ord("9") + 1] = _DIGIT_BIT
_CLASS[[ord(c) for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]] = _PUNCT_BIT
_ALL = _UPPER_BIT | _LOWER_BIT | _DIGIT_BIT | _PUNCT_BIT
# ASCII letters to lower case; every other byte to 0 (dropped).
_LETTER = np.zeros(256, dtype=np.uint8)
_LETTER[ord("a") : ord("z") + 1] = np.arange(ord("a"), ord("z") + 1)
_LETTER[ord("A") : ord("Z") + 1] = np.arange(ord("a"), ord("z") + 1)


@dataclass(frozen=True)
class JobResult:
    """Counts of one job in one form, with the input's size and the time it took."""

    job: str
    form: str
    counts: dict[str, int]
    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB (10⁶ bytes) per second."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")


def check_job(job: str, form: str | None = None) -> None:
    """One clear error for an unknown job or form.

    >>> check_job("passwords", "vectorized")
    Traceback (most recent call last):
    ...
    sparkhu.errors.InputError: form: 'vectorized' is not a form; expected one of udf, vectorised, embedded
    """
    if job not in JOBS:
        raise InputError(f"{job!r} is not a job; expected one of {', '.join(JOBS)}", field="job")
    if form is not None and form not in FORMS:
        raise InputError(f"{form!r} is not a form; expected one of {', '.join(FORMS)}", field="form")


def input_size(uri: str) -> int:
    """Bytes of the input file (any pyarrow filesystem URI or a local path)."""
    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise NotFoundError(f"input {uri}: no such file")
    return int(info.size or 0)


# ---------------------------------------------------------------------- the embedded form


def run_embedded(job: str, uri: str, *, block_bytes: int = BLOCK_BYTES) -> JobResult:
    """Run ``job`` on ``uri`` without Spark: one streaming pass over blocks of whole lines."""
    check_job(job)
    start = time.perf_counter()
    size = input_size(uri)
    if job == "passwords":
        words = dictionary_array()
        counts = {"strong": sum(_strong_in_block(raw, words) for raw in _blocks(uri, block_bytes))}
    else:
        total: dict[str, int] = {}
        for raw in _blocks(uri, block_bytes):
            for key, count in _first_chars_in_block(raw).items():
                total[key] = total.get(key, 0) + count
        counts = dict(sorted(total.items()))
    return JobResult(job, "embedded", counts, size, time.perf_counter() - start)


def _blocks(uri: str, block_bytes: int) -> Iterator[np.ndarray]:
    """Blocks of whole lines as bytes, each ending with ``\\n`` (one is added after a last line without)."""
    fs, path = _filesystem(uri)
    rest = b""
    with fs.open_input_stream(path) as stream:
        while True:
            chunk = stream.read(block_bytes)
            buf = rest + chunk if rest else chunk
            if not chunk:
                if buf:
                    yield np.frombuffer(buf + b"\n", dtype=np.uint8)
                return
            cut = buf.rfind(b"\n")
            if cut < 0:
                rest = buf
                continue
            rest = buf[cut + 1 :]
            yield np.frombuffer(buf, dtype=np.uint8, count=cut + 1)


def _lines(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each line of ``raw`` starts, and where it ends (before its ``\\n`` or ``\\r\\n``)."""
    newlines = np.flatnonzero(raw == 10)
    starts = np.empty(len(newlines), dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines[:-1] + 1
    cr = raw[np.maximum(newlines - 1, 0)] == 13
    ends = newlines - (cr & (newlines > starts))
    return starts, ends


def _first_chars_in_block(raw: np.ndarray) -> dict[str, int]:
    """Lines by first character: ASCII from the first byte, other characters decoded."""
    starts, ends = _lines(raw)
    empty = ends == starts
    first = raw[starts]
    ascii_first = ~empty & (first < 0x80)
    counts = np.bincount(first[ascii_first], minlength=128)
    out = {chr(b): int(n) for b, n in enumerate(counts) if n}
    if empty.any():
        out[""] = int(empty.sum())
    for i in np.flatnonzero(~empty & (first >= 0x80)):
        char = raw[starts[i] : ends[i]].tobytes().decode("utf-8", "replace")[:1]
        out[char] = out.get(char, 0) + 1
    return out


def _strong_in_block(raw: np.ndarray, words: pa.Array) -> int:
    """Strong passwords among the lines of one block, on its bytes."""
    starts, ends = _lines(raw)
    if raw.max() >= 0x80:  # characters, not bytes: skip UTF-8 continuation bytes
        chars = np.concatenate(([0], np.cumsum((raw & 0xC0) != 0x80)))
        length = chars[ends] - chars[starts]
    else:
        length = ends - starts
    classes = _CLASS[raw]
    bits = np.bitwise_or.reduceat(classes, starts)  # a line's segment includes its \n (no class)
    ok = (length >= MIN_LEN) & (length <= MAX_LEN) & (bits == _ALL)
    if not ok.any():
        return 0
    # the candidates' letters, lower-cased, as an Arrow string array
    in_candidate = np.repeat(ok, np.diff(np.append(starts, len(raw))))
    kept = ((classes & (_UPPER_BIT | _LOWER_BIT)) != 0) & in_candidate
    per_line = np.add.reduceat(kept.view(np.uint8), starts, dtype=np.uint8)[ok]  # ≤ 32 letters
    offsets = np.zeros(len(per_line) + 1, dtype=np.int32)
    np.cumsum(per_line, out=offsets[1:])
    letters = _LETTER[raw[kept]]
    candidates = pa.StringArray.from_buffers(len(per_line), pa.py_buffer(offsets), pa.py_buffer(letters))
    return int(len(per_line) - pc.sum(pc.is_in(candidates, value_set=words)).as_py())


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        try:
            return pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise InputError(f"cannot open {uri}: {exc}", field="input") from exc
    return pafs.LocalFileSystem(), os.path.abspath(uri)


# ---------------------------------------------------------------------- the Spark forms


def run_spark(session: SparkSession, job: str, form: str, uri: str) -> JobResult:
    """Run ``job`` in ``form`` (``udf`` or ``vectorised``) on Spark over the text file ``uri``."""
    check_job(job, form)
    if form == "embedded":
        raise InputError("the embedded form runs without Spark; use run_embedded", field="form")
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, StringType

    size = input_size(uri)
    start = time.perf_counter()
    lines = session.read.text(_spark_path(uri))
    value = F.col("value")
    if job == "first_char":
        key = (
            F.udf(_first_char, StringType(), useArrow=False)(value)
            if form == "udf"
            else F.substring(value, 1, 1)
        )
        rows = lines.groupBy(key.alias("c")).count().collect()
        counts = {str(r["c"]): int(r["count"]) for r in sorted(rows, key=lambda r: r["c"])}
    elif form == "udf":
        counts = {"strong": lines.where(F.udf(is_strong, BooleanType(), useArrow=False)(value)).count()}
    else:
        length = F.length(value)
        candidates = lines.where(
            length.between(MIN_LEN, MAX_LEN)
            & value.rlike(UPPER_RE) & value.rlike(LOWER_RE) & value.rlike(DIGIT_RE) & value.rlike(PUNCT_RE)
        ).select(F.lower(F.regexp_replace(value, NOT_LETTER_RE, "")).alias("letters"))  # fmt: skip
        words = session.createDataFrame(dictionary_table())
        strong = candidates.join(F.broadcast(words), candidates["letters"] == words["word"], "left_anti")
        counts = {"strong": strong.count()}
    return JobResult(job, form, counts, size, time.perf_counter() - start)


def _first_char(line: str) -> str:
    """The original's UDF of task 1."""
    return line[:1]


def _spark_path(uri: str) -> str:
    return uri if "://" in uri else "file://" + os.path.abspath(uri)
