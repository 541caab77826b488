"""The tuning study's two jobs over a text file of lines, each in three forms with the same counts.

Jobs: ``first_char`` counts lines by their first character (an empty line counts under
``""``); ``passwords`` counts strong passwords (the rule of :mod:`sparkhu.sparkstudy.words`).

Forms: ``udf`` is the original's row-at-a-time Python UDF on Spark; ``vectorised`` is Spark SQL
expressions (regular expressions for the classes, the dictionary as a broadcast anti-join);
``embedded`` runs without Spark: the file is streamed in blocks into one reused buffer and each
block is one compiled (numba) pass over its bytes — per line its classes, its length in characters
and its lower-cased letters, and for a candidate (right length, all four classes) a probe of a
hash table of the dictionary built once per process. Compiled code is cached on disk, so only the
first run on a machine pays for the compilation.

Lines are split on ``\\n`` with a trailing ``\\r`` dropped, as Spark's text source reads them.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp, "p.txt")
...     _ = path.write_text("Tr0ub4dor&3x\\nSunshine#2024\\n\\nabc\\n")
...     run_embedded("passwords", str(path)).counts, run_embedded("first_char", str(path)).counts
({'strong': 1}, {'': 1, 'S': 1, 'T': 1, 'a': 1})
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from sparkhu.errors import ConfigError, InputError, NotFoundError
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
from sparkhu.storage.lake import FILESYSTEMS, open_filesystem

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
# Both, and whether the byte starts a character (not a UTF-8 continuation byte), in one lookup.
_BYTES = np.arange(256)
_INFO = (_CLASS | (((_BYTES & 0xC0) != 0x80) << 4) | (_LETTER.astype(np.int64) << 8)).astype(np.int32)


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
        table = _word_table()
        counts = {"strong": sum(_strong_in_block(raw, table) for raw in _blocks(uri, block_bytes))}
    else:
        total: dict[str, int] = {}
        for raw in _blocks(uri, block_bytes):
            for key, count in _first_chars_in_block(raw).items():
                total[key] = total.get(key, 0) + count
        counts = dict(sorted(total.items()))
    return JobResult(job, "embedded", counts, size, time.perf_counter() - start)


def _blocks(uri: str, block_bytes: int) -> Iterator[np.ndarray]:
    """Blocks of whole lines as bytes, each ending with ``\\n`` (one is added after a last line without).

    The file is read straight into one reused buffer (the partial last line of a block is moved
    to its front), so a block costs no allocation and no copy beyond the read itself; a block
    is only valid until the next one is yielded.
    """
    fs, path = _filesystem(uri)
    buf = np.empty(block_bytes + 1, dtype=np.uint8)  # + 1: room for a closing \n
    held = 0  # bytes of a partial line carried at the front of buf
    with fs.open_input_stream(path) as stream:
        while True:
            if held == len(buf) - 1:  # one line longer than the buffer: grow it
                buf = np.concatenate((buf, np.empty(len(buf), dtype=np.uint8)))
            got = stream.readinto(buf[held : len(buf) - 1])
            end = held + got
            if not got:
                if end:
                    buf[end] = 10
                    yield buf[: end + 1]
                return
            last = _last_newline(buf[held:end])
            if last < 0:
                held = end
                continue
            cut = held + last + 1
            yield buf[:cut]
            held = end - cut
            buf[:held] = buf[cut:end]


def _last_newline(data: np.ndarray) -> int:
    """Index of the last ``\\n`` in ``data`` or -1, scanning back in small windows (lines are short)."""
    stop = len(data)
    window = 4096
    while stop > 0:
        start = max(0, stop - window)
        found = np.flatnonzero(data[start:stop] == 10)
        if len(found):
            return start + int(found[-1])
        stop, window = start, window * 2
    return -1


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


def _strong_in_block(raw: np.ndarray, table: _WordTable) -> int:
    """Strong passwords among the lines of one block, on its bytes (one compiled pass)."""
    return int(_count_strong(raw, _INFO, MIN_LEN, MAX_LEN, _ALL, *table))


# The dictionary as an open-addressing hash table built once per process. A slot is four
# uint64 (32 bytes, one cache line): length | (word index + 1) << 8 (0 = empty), then the word's
# first 24 letters, zero-padded, so a lookup is one memory read and exact for words of up to 24
# letters (a longer word's rest is compared in the word list).
_WordTable = tuple[np.ndarray, np.ndarray, np.ndarray]
_FNV_OFFSET, _FNV_PRIME = np.uint64(14695981039346656037), np.uint64(1099511628211)
_INLINE = 24  # letters kept in a slot
_BATCH = 4096  # candidates looked up together: their memory reads overlap


@functools.cache
def _word_table() -> _WordTable:
    words = dictionary_array()
    data = np.frombuffer(words.buffers()[2], dtype=np.uint8)
    offsets = np.frombuffer(words.buffers()[1], dtype=np.int32, count=len(words) + 1).astype(np.int64)
    slots = 1 << (2 * len(words)).bit_length()  # load ≤ 1/2: short probe chains
    table = np.zeros((slots, 4), dtype=np.uint64)
    _fill_table(data, offsets, table)
    return table, data, offsets


@numba.njit(cache=True, nogil=True)
def _fnv(data: np.ndarray, start: int, stop: int) -> np.uint64:  # pragma: no cover - compiled
    h = _FNV_OFFSET
    for i in range(start, stop):
        h = (h ^ np.uint64(data[i])) * _FNV_PRIME
    return h


@numba.njit(cache=True, nogil=True)
def _fill_table(data: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> None:  # pragma: no cover
    key = np.zeros(32, dtype=np.uint8)
    packed = key.view(np.uint64)
    for w in range(len(offsets) - 1):
        lo, hi = offsets[w], offsets[w + 1]
        n = min(hi - lo, 255)
        at = np.int64(_fnv(data, lo, hi) & np.uint64(len(table) - 1))
        while table[at, 0] != 0:
            at = (at + 1) & (len(table) - 1)
        key[:] = 0
        for k in range(min(n, _INLINE)):
            key[k] = data[lo + k]
        table[at, 0] = np.uint64(n) | (np.uint64(w + 1) << np.uint64(8))
        table[at, 1] = packed[0]
        table[at, 2] = packed[1]
        table[at, 3] = packed[2]


@numba.njit(cache=True, nogil=True)
def _count_strong(
    raw: np.ndarray,
    info: np.ndarray,
    min_len: int,
    max_len: int,
    all_bits: int,
    table: np.ndarray,
    words: np.ndarray,
    offsets: np.ndarray,
) -> int:  # pragma: no cover - compiled; checked against the UDF form and the generator's answers
    """One branch-light pass over the bytes: per line its classes, its length in characters and
    its lower-cased letters; a candidate's letters (hashed, packed) are kept, and the kept
    candidates are looked up in batches (see :func:`_not_words`)."""
    scratch = np.zeros(64, dtype=np.uint8)  # index masked: a longer line is no candidate anyway
    packed = scratch.view(np.uint64)
    hashes = np.empty(_BATCH, dtype=np.uint64)
    keys = np.empty((_BATCH, 4), dtype=np.uint64)
    letters = np.empty((_BATCH, max_len), dtype=np.uint8)
    strong = 0
    held = 0
    bits = 0
    chars = 0
    n = 0
    for i in range(len(raw)):
        b = raw[i]
        if b == 10:
            if chars > 0 and raw[i - 1] == 13:  # a trailing \r is not part of the line
                chars -= 1
            if min_len <= chars <= max_len and bits == all_bits:
                hashes[held] = _fnv(scratch, 0, n)
                for k in range(n, _INLINE):
                    scratch[k] = 0
                keys[held, 0] = n
                keys[held, 1] = packed[0]
                keys[held, 2] = packed[1]
                keys[held, 3] = packed[2]
                if n > _INLINE:
                    letters[held, :n] = scratch[:n]
                held += 1
                if held == _BATCH:
                    strong += _not_words(hashes, keys, letters, held, table, words, offsets)
                    held = 0
            bits = 0
            chars = 0
            n = 0
            continue
        v = info[b]
        bits |= v & 0xF
        chars += (v >> 4) & 1
        c = v >> 8
        scratch[n & 63] = c
        n += c != 0
    return strong + _not_words(hashes, keys, letters, held, table, words, offsets)


@numba.njit(cache=True, nogil=True)
def _not_words(
    hashes: np.ndarray,
    keys: np.ndarray,
    letters: np.ndarray,
    count: int,
    table: np.ndarray,
    words: np.ndarray,
    offsets: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """How many of ``count`` candidates' letters are no dictionary word, compared exactly. The
    lookups of a batch do not wait on one another, so their cache misses overlap."""
    mask = np.uint64(len(table) - 1)
    strong = 0
    for c in range(count):
        n = np.int64(keys[c, 0])
        at = np.int64(hashes[c] & mask)
        found = False
        while table[at, 0] != 0:
            head = table[at, 0]
            if (
                np.int64(head & np.uint64(0xFF)) == n
                and table[at, 1] == keys[c, 1]
                and table[at, 2] == keys[c, 2]
                and table[at, 3] == keys[c, 3]
            ):
                same = True
                if n > _INLINE:  # the rest of a long word, from the list
                    lo = offsets[np.int64(head >> np.uint64(8)) - 1]
                    for k in range(_INLINE, n):
                        if words[lo + k] != letters[c, k]:
                            same = False
                            break
                if same:
                    found = True
                    break
            at = (at + 1) & (len(table) - 1)
        strong += not found
    return strong


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return open_filesystem(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ConfigError) as exc:
        raise InputError(f"cannot open {uri}: {exc}", field="input") from exc


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
    if "://" not in uri:
        return "file://" + os.path.abspath(uri)
    scheme = uri.split("://", 1)[0]
    if scheme not in FILESYSTEMS:  # a scheme only fsspec serves: Spark's readers are Hadoop's
        raise InputError(
            f"{uri}: Spark reads through Hadoop filesystems, and {scheme}:// is served by fsspec only; "
            "run the embedded form on it, or give Spark a Hadoop URI (file://, hdfs://, s3a://...)",
            field="input",
        )
    return uri
