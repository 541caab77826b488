"""Line-oriented files cut into pieces of whole lines, in bounded memory.

The CSV reader of the file source parses pieces of many lines at once; this module cuts them.
:func:`open_lines` opens a file so that every line end reads as ``\\n``: a lone ``\\r`` (old
Mac line ends, or a stray one inside a line) becomes ``\\n`` byte for byte — CSV parsers end a
line there too, so line numbers and byte offsets stay those of the file — while ``\\r\\n``
is kept for the parser to strip. :func:`pieces` then cuts the stream into pieces of at most
``lines`` whole lines; a line longer than ``max_line`` bytes is never held in memory: it comes
as a piece of its own, flagged ``too_long``, holding only its first bytes, so that the caller
can quarantine it and go on with the next line.

>>> import io
>>> stream = io.BufferedReader(CrAsNewline(io.BytesIO(b"a,1\\rb,2\\r\\n" + b"x" * 50 + b"\\nc,3")))
>>> [(p.data[:8], p.lines, p.size, p.too_long, p.last) for p in pieces(stream, 2, max_line=20)]
[(b'a,1\\nb,2\\r', 2, 9, False, False), (b'xxxxxxxx', 1, 51, True, False), (b'c,3', 1, 3, False, True)]
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_LINE_BYTES = 1 << 20
"""Lines longer than this (1 MiB, about 50,000 numeric fields) are set aside, not parsed."""
HEAD_BYTES = 1024
"""How much of a too-long line a piece keeps (for the quarantine's ``raw``)."""

_CR, _LF = 13, 10


class Piece(NamedTuple):
    """A run of whole lines of a file (or the head of one line that is too long)."""

    data: bytes
    """The lines, their line ends included; for a ``too_long`` line, its first :data:`HEAD_BYTES`."""
    lines: int
    """Lines in the piece (the last may lack its line end at the end of the file)."""
    size: int
    """Bytes of the file the piece covers (``len(data)`` unless ``too_long``)."""
    too_long: bool
    last: bool
    """True for the piece that ends the file."""


class CrAsNewline(io.RawIOBase):
    """A binary stream whose lone ``\\r`` bytes read as ``\\n`` (same length, same offsets).

    >>> io.BufferedReader(CrAsNewline(io.BytesIO(b"a\\rb\\r\\nc\\r"))).read()
    b'a\\nb\\r\\nc\\n'
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        n = self._raw.readinto(view)  # type: ignore[attr-defined]  # files and BytesIO have it
        if not n:
            return 0
        data = view[:n].tobytes()  # a copy, for memchr-speed checks: most blocks hold no lone CR
        if b"\r" not in data or (data.count(b"\r") == data.count(b"\r\n") and not data.endswith(b"\r")):
            return n
        arr = np.frombuffer(view[:n], np.uint8)  # the caller's buffer: translated in place
        cr = np.flatnonzero(arr == _CR)
        if len(cr):  # a CR followed by LF stays (CRLF); any other CR becomes LF
            after = np.empty(len(cr), np.uint8)
            inside = cr < n - 1
            after[inside] = arr[cr[inside] + 1]
            if not inside[-1]:  # the block ends on a CR: the file's next byte decides
                after[-1] = self._peek()[0]
            arr[cr[after != _LF]] = _LF
        return n

    def _peek(self) -> bytes:
        """The next byte of the file (NUL at its end), without consuming it."""
        following = self._raw.read(1)
        if following:
            self._raw.seek(-1, io.SEEK_CUR)
        return following or b"\0"


def open_lines(path: Path) -> io.BufferedReader:
    """``path`` opened for :func:`pieces`: binary, buffered, lone ``\\r`` read as ``\\n``."""
    return io.BufferedReader(CrAsNewline(path.open("rb")), buffer_size=1 << 16)


def pieces(f: BinaryIO, lines: int, *, max_line: int = MAX_LINE_BYTES) -> Iterator[Piece]:
    """Cut ``f`` (from where it stands) into pieces of at most ``lines`` whole lines; see the module.

    Memory stays within about one piece plus ``max_line`` bytes, whatever the lines' lengths.
    Newlines are counted with ``bytes.count`` (memchr speed) as blocks arrive, and a piece with
    no line longer than ``max_line`` (:func:`_no_long_line`, a few ``find`` calls) is cut without
    indexing its lines; only a piece that may hold a long line is examined line by line.
    """
    buf, eof, block = b"", False, max(1 << 16, lines * 80)
    newline_count = 0
    while True:
        parts = [buf]
        while not eof and newline_count < lines and len(buf) - buf.rfind(b"\n") - 1 <= max_line:
            more = f.read(block)
            eof = not more
            newline_count += _count_lf(more)
            parts.append(more)
            buf = b"".join(parts) if len(parts) > 1 else buf
            parts = [buf]
        if not buf:
            return
        fast = _fast_cut(buf, newline_count, lines, max_line, eof)
        if fast is not None:
            cut, count = fast
            block = max(1 << 16, int(cut * 1.02) + 4096)  # the next piece in about one read
            chunk, buf = buf[:cut], buf[cut:]
            newline_count -= min(count, newline_count)  # the last line of a file may lack its \n
            if not buf and not eof:
                buf = f.read(block)
                eof = not buf
                newline_count = _count_lf(buf)
            yield Piece(chunk, count, len(chunk), False, eof and not buf)
            continue
        newlines = np.flatnonzero(np.frombuffer(buf, np.uint8) == _LF)[:lines]
        starts = np.concatenate([[0], newlines[:-1] + 1]) if len(newlines) else np.zeros(0, np.int64)
        too_long = np.flatnonzero(newlines - starts > max_line)
        tail = len(buf) - (int(newlines[-1]) + 1 if len(newlines) else 0)
        long_line = unfinished = False
        if len(too_long):  # whole lines before the first too-long one, or that line alone
            first = int(too_long[0])
            cut, count = (int(starts[first]), first) if first else (int(newlines[0]) + 1, 1)
            long_line = first == 0
        elif len(newlines) == lines:
            cut, count = int(newlines[-1]) + 1, lines
        elif tail > max_line and len(newlines):  # whole lines before an unfinished line too long already
            cut, count = len(buf) - tail, len(newlines)
        elif tail > max_line:  # that unfinished line: its end is still ahead
            cut, count, long_line, unfinished = len(buf), 1, True, True
        else:  # the end of the file
            cut, count = len(buf), len(newlines) + (tail > 0)
        if long_line:
            head, size, buf = buf[: min(cut, HEAD_BYTES)], cut, buf[cut:]
            if unfinished:
                size, buf, eof = _skip_line(f, size, block, eof)
            if not buf and not eof:
                buf = f.read(block)
                eof = not buf
            newline_count = _count_lf(buf)
            yield Piece(head, 1, size, True, eof and not buf)
            continue
        block = max(1 << 16, int(cut * 1.1))
        chunk, buf = buf[:cut], buf[cut:]
        if not buf and not eof:
            buf = f.read(block)
            eof = not buf
        newline_count = _count_lf(buf)
        yield Piece(chunk, count, len(chunk), False, eof and not buf)


def _fast_cut(buf: bytes, newline_count: int, lines: int, max_line: int, eof: bool) -> tuple[int, int] | None:
    """``(cut, lines)`` of the next piece of ``buf`` when it holds no line too long, found without
    indexing every line; None when the careful way must decide (a long line, or one maybe)."""
    if newline_count >= lines:
        cut, count = _after_line(buf, newline_count, lines), lines
    elif eof:
        tail = len(buf) - buf.rfind(b"\n") - 1
        if tail > max_line:
            return None
        cut, count = len(buf), newline_count + (tail > 0)
    else:
        return None
    return (cut, count) if _no_long_line(buf, cut, max_line) else None


def _after_line(buf: bytes, newline_count: int, line: int) -> int:
    """The offset just after the ``line``-th newline of ``buf`` (which holds ``newline_count``).

    Guessed from the mean line length, then corrected by a few ``find``/``rfind`` steps; numpy
    indexes every newline only when the guess is far off (lines of very uneven lengths).
    """
    guess = len(buf) * line // newline_count
    seen = _count_lf(buf, guess)  # newlines before the guess
    at = guess
    if abs(seen - line) <= 256:
        if seen >= line:  # step back over the newlines after the wanted one
            for _ in range(seen - line + 1):
                at = buf.rfind(b"\n", 0, at)
            return at + 1
        at -= 1
        for _ in range(line - seen):
            at = buf.find(b"\n", at + 1)
        return at + 1
    return int(np.flatnonzero(np.frombuffer(buf, np.uint8) == _LF)[line - 1]) + 1


def _count_lf(data: bytes, end: int | None = None) -> int:
    """Newlines in ``data[:end]``, counted by numpy (several times faster than ``bytes.count``)."""
    view = np.frombuffer(data, np.uint8, count=len(data) if end is None else end)
    return int(np.count_nonzero(view == _LF))


def _no_long_line(buf: bytes, end: int, max_line: int) -> bool:
    """True when no line of ``buf[:end]`` is longer than ``max_line`` bytes (without its ``\n``).

    Such a line would cover a whole aligned window of ``(max_line + 2) // 2`` bytes, so every
    window holding a newline proves there is none; False (not sure) for many small windows.
    """
    window = (max_line + 2) // 2
    if end // window > 256:
        return False
    return all(buf.find(b"\n", at, min(at + window, end)) >= 0 for at in range(0, end - window + 1, window))


def _skip_line(f: BinaryIO, size: int, block: int, eof: bool) -> tuple[int, bytes, bool]:
    """Read past the end of the current line: (its total size, the bytes after it, end of file)."""
    while not eof:
        more = f.read(block)
        if not more:
            return size, b"", True
        end = more.find(b"\n")
        if end >= 0:
            return size + end + 1, more[end + 1 :], False
        size += len(more)
    return size, b"", eof
