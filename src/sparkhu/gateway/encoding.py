"""JSON answers encoded in slices, so that encoding one big answer never holds the interpreter.

``json.dumps`` encodes a whole document in one C call that keeps the GIL to itself: 11 MB of
points hold it for half a second, and every other thread of the gateway — the event loop
answering ``/healthz`` included — waits. :func:`dumps` gives the same bytes, but encodes long
lists a slice at a time, so other threads get their turn between slices.

>>> dumps({"data": {"ts": list(range(5)), "name": "x"}}, chunk=2)
b'{"data":{"ts":[0,1,2,3,4],"name":"x"}}'
>>> dumps([]) == json.dumps([]).encode()
True
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

CHUNK = 2_000
"""List items encoded per C call."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class RawJSON:
    """JSON text encoded earlier (in a worker thread), inserted as it is by :func:`dumps`.

    >>> dumps({"data": RawJSON('{"a":1}')})
    b'{"data":{"a":1}}'
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _text(value: Any, chunk: int) -> str:
    if isinstance(value, RawJSON):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{_encode(str(k))}:{_text(v, chunk)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple) and len(value) > chunk:
        return (
            "["
            + ",".join(_encode(list(value[i : i + chunk]))[1:-1] for i in range(0, len(value), chunk))
            + "]"
        )
    return _encode(value)


def dumps(value: Any, *, chunk: int = CHUNK) -> bytes:
    """Compact UTF-8 JSON of ``value`` (no NaN or infinities: they are not JSON), long lists in slices."""
    return _text(value, chunk).encode("utf-8")


def dumps_text(value: Any, *, chunk: int = CHUNK) -> str:
    """:func:`dumps` as text (for WebSocket text frames)."""
    return _text(value, chunk)


class JSONAnswer(JSONResponse):
    """Starlette's JSON response, encoded by :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        """The body: compact JSON, long lists in slices."""
        return dumps(content)
