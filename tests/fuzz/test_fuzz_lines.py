"""Fuzz the line cutter: every byte of a file lands in exactly one piece, long lines never in memory."""

from __future__ import annotations

import io
import re

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.conftest import FUZZ

from sparkhu.connectors.lines import HEAD_BYTES, CrAsNewline, pieces

LINE_BYTES = st.binary(max_size=40) | st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\r", b"a\rb", b"x" * 300])
BODY = st.lists(LINE_BYTES, max_size=30).map(b"".join)


def lone_cr_as_lf(data: bytes) -> bytes:
    return re.sub(rb"\r(?!\n)", b"\n", data)


@FUZZ
@given(data=BODY, buffer_size=st.integers(1, 64), read_size=st.integers(1, 64))
def test_lone_cr_reads_as_lf_whatever_the_read_sizes(data: bytes, buffer_size: int, read_size: int):
    stream = io.BufferedReader(CrAsNewline(io.BytesIO(data)), buffer_size=buffer_size)
    got = b""
    while chunk := stream.read(read_size):
        got += chunk
    assert got == lone_cr_as_lf(data)


@FUZZ
@given(data=BODY, lines=st.integers(1, 7), max_line=st.integers(1, 120), skip=st.integers(0, 20))
def test_pieces_cover_the_stream_and_set_long_lines_aside(data: bytes, lines: int, max_line: int, skip: int):
    text = lone_cr_as_lf(data)
    skip = min(skip, len(text))
    stream = io.BufferedReader(CrAsNewline(io.BytesIO(data)), buffer_size=16)
    stream.seek(skip)
    got = list(pieces(stream, lines, max_line=max_line))
    rest = text[skip:]
    assert sum(p.size for p in got) == len(rest)
    assert [p.last for p in got] == [False] * (len(got) - 1) + [True] * bool(got)
    at = 0
    expected_lines = rest.split(b"\n")
    if expected_lines and expected_lines[-1] == b"":
        expected_lines.pop()
    seen_lines = 0
    for piece in got:
        covered = rest[at : at + piece.size]
        if piece.too_long:
            assert piece.lines == 1 and len(covered.rstrip(b"\n")) > max_line
            assert piece.data == covered[:HEAD_BYTES] and covered.count(b"\n") <= 1
        else:
            assert piece.data == covered and 1 <= piece.lines <= lines
            assert all(len(line) <= max_line for line in covered.split(b"\n"))
        seen_lines += piece.lines
        at += piece.size
    assert seen_lines == len(expected_lines)
