"""A deterministic generator of password-like text, with the jobs' answers known by construction.

Lines are built in numpy blocks (no per-line Python) from five kinds, each with a known
verdict under :func:`~sparkhu.sparkstudy.words.is_strong`:

``strong``   ``X`` + 6–12 vowel-less lower-case letters + 1–4 digits + 1–3 punctuation (9–20
             chars): always strong, since no dictionary word of 6 or more letters lacks vowels
             (checked by a test against the shipped word list);
``word``     a capitalised dictionary word of 5–12 letters + digits + punctuation: weak (a word);
``lower``    a lower-case dictionary word + digits: weak (no upper case, no punctuation);
``short``    upper + 2 lower + digit + punctuation (5 chars): weak (too short);
``long``     like ``strong`` with 30–40 letters: weak (over 32 chars).

:func:`generate` writes lines to a file until it holds ``size`` bytes (cut at a line end)
and returns the expected answers: the number of strong lines and the count of lines by
first character. Same ``seed`` and ``size``, same bytes.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     p, q = pathlib.Path(tmp, "p.txt"), pathlib.Path(tmp, "q.txt")
...     stats, again = generate(p, 10_000, seed=1), generate(q, 10_000, seed=1)
...     same = p.read_bytes() == q.read_bytes()
>>> same, stats == again, stats.bytes <= 10_000, 0 < stats.strong < stats.lines
(True, True, True, True)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sparkhu.errors import InputError
from sparkhu.sparkstudy.words import dictionary

KINDS = ("strong", "word", "lower", "short", "long")
WEIGHTS = np.array([0.35, 0.25, 0.2, 0.1, 0.1])
_CONSONANTS = np.frombuffer(b"bcdfghjklmnpqrstvwxz", dtype=np.uint8)
_UPPER = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
_PUNCT = np.frombuffer(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", dtype=np.uint8)
_BLOCK = 50_000  # lines per block
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


@dataclass
class TextStats:
    """What a generated file holds: bytes, lines, strong passwords, lines by first character."""

    bytes: int = 0
    lines: int = 0
    strong: int = 0
    first_chars: dict[str, int] = field(default_factory=dict)


def parse_size(text: str | int, *, field_name: str = "size") -> int:
    """Bytes from ``100MB``, ``1GB``, ``512KiB`` or a plain number (decimal units, as disks count).

    >>> parse_size("100MB"), parse_size("2 KiB"), parse_size(5)
    (100000000, 2048, 5)
    >>> parse_size("lots")
    Traceback (most recent call last):
    ...
    sparkhu.errors.InputError: size: 'lots' is not a size; expected e.g. 100MB, 1GB or 512KiB
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
        unit = match.group(2).upper() if match else ""
        if match is None or unit not in _UNITS:
            raise InputError(f"{text!r} is not a size; expected e.g. 100MB, 1GB or 512KiB", field=field_name)
        value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise InputError(f"{text!r} must be more than 0 bytes", field=field_name)
    return value


def generate(
    path: str | os.PathLike[str],
    size: int | str,
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> TextStats:
    """Write password-like lines to ``path`` until it holds ``size`` bytes; return the answers."""
    total = parse_size(size)
    rng = np.random.default_rng(seed)
    words = _word_matrix()
    stats = TextStats()
    counts = np.zeros(256, dtype=np.int64)
    with open(path, "wb") as out:
        while stats.bytes < total:
            data, kinds, firsts, ends = _block(rng, words)
            room = total - stats.bytes
            if len(data) > room:  # keep whole lines only
                keep = int(np.searchsorted(ends, room, side="right"))
                if keep == 0:
                    break
                data, kinds, firsts = data[: ends[keep - 1]], kinds[:keep], firsts[:keep]
            out.write(data.tobytes())
            stats.bytes += len(data)
            stats.lines += len(kinds)
            stats.strong += int(np.count_nonzero(kinds == 0))
            counts += np.bincount(firsts, minlength=256)
            if progress is not None:
                progress(len(data))
    stats.first_chars = {chr(b): int(n) for b, n in enumerate(counts) if n}
    return stats


def _word_matrix() -> tuple[np.ndarray, np.ndarray]:
    """Dictionary words of 5–12 letters as a padded byte matrix and their lengths."""
    chosen = sorted(w for w in dictionary() if 5 <= len(w) <= 12 and w.isascii())
    lengths = np.array([len(w) for w in chosen], dtype=np.int64)
    matrix = np.zeros((len(chosen), 12), dtype=np.uint8)
    flat = np.frombuffer("".join(chosen).encode(), dtype=np.uint8)
    rows = np.repeat(np.arange(len(chosen)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    matrix[rows, cols] = flat
    return matrix, lengths


def _block(rng: np.random.Generator, words: tuple[np.ndarray, np.ndarray]) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:  # fmt: skip
    """One block of lines: the bytes, each line's kind, first byte and end offset."""
    n = _BLOCK
    kinds = rng.choice(len(KINDS), size=n, p=WEIGHTS)
    matrix, lengths = words
    word_idx = rng.integers(0, len(lengths), size=n)
    is_word = (kinds == 1) | (kinds == 2)
    # segment lengths: head letter, body letters, digits, punctuation
    head = np.where(kinds == 2, 0, 1)
    body = np.select(
        [kinds == 0, is_word, kinds == 3, kinds == 4],
        [rng.integers(6, 13, n), lengths[word_idx], np.full(n, 2), rng.integers(30, 41, n)],
    )
    body = np.where(kinds == 1, body - 1, body)  # the capital replaces the word's first letter
    digits = np.select(
        [kinds == 3, kinds == 2], [np.full(n, 1), rng.integers(1, 5, n)], rng.integers(1, 5, n)
    )
    punct = np.select([kinds == 3, kinds == 2], [np.full(n, 1), np.zeros(n, np.int64)], rng.integers(1, 4, n))
    line_len = head + body + digits + punct + 1
    ends = np.cumsum(line_len)
    starts = ends - line_len
    data = np.empty(int(ends[-1]), dtype=np.uint8)

    def place(
        offset: np.ndarray, seg: np.ndarray, values: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> None:
        rows = np.repeat(np.arange(n), seg)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(seg) - seg, seg)
        data[starts[rows] + offset[rows] + within] = values(rows, within)

    word_upper = matrix[word_idx, 0] - 32  # 'a'..'z' → 'A'..'Z'
    heads = np.where(kinds == 1, word_upper, _UPPER[rng.integers(0, 26, n)])
    place(np.zeros(n, np.int64), head, lambda rows, _: heads[rows])
    random_letters = _CONSONANTS[rng.integers(0, len(_CONSONANTS), int(body.sum()))]

    def body_values(rows: np.ndarray, within: np.ndarray) -> np.ndarray:
        from_word = matrix[word_idx[rows], np.minimum(within + (kinds[rows] == 1), 11)]
        return np.where(is_word[rows], from_word, random_letters[: len(rows)])

    place(head, body, body_values)
    place(head + body, digits, lambda rows, _: _DIGITS[rng.integers(0, 10, len(rows))])
    place(head + body + digits, punct, lambda rows, _: _PUNCT[rng.integers(0, len(_PUNCT), len(rows))])
    data[ends - 1] = ord("\n")
    return data, kinds, data[starts].astype(np.int64), ends
