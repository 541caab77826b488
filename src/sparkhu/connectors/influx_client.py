"""A small InfluxDB 1.x HTTP client: InfluxQL queries (chunked), line-protocol writes, ping.

Only the standard library speaks HTTP here. Every failure — connection refused, a timeout, an HTTP
error, an ``error`` inside a query result — is translated once into :class:`~sparkhu.errors.ConnectorError`
naming ``who`` (the connector), the server and the statement, and transient ones are retried with the
one policy of :mod:`sparkhu.retrying` first.

>>> client = InfluxClient("http://127.0.0.1:8086", who="influxdb source 'doc'")
>>> client.query_url("SELECT * FROM m", "AMPds2", chunk_size=500)
'http://127.0.0.1:8086/query?q=SELECT+%2A+FROM+m&db=AMPds2&epoch=u&chunked=true&chunk_size=500'
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from sparkhu.errors import ConnectorError
from sparkhu.retrying import RetryPolicy

__all__ = ["InfluxClient", "quote_ident"]


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes: ``quote_ident('a"b')`` → ``"a\\"b"``."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxClient:
    """Queries and writes against ``url`` (see the module docstring); ``who`` starts every error."""

    def __init__(
        self,
        url: str,
        *,
        who: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.who = who
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy(retries=2, backoff_s=0.5)
        self.stop = stop
        self._auth = {"u": username, "p": password} if username else {}

    def query_url(self, statement: str, db: str | None, *, chunk_size: int | None = None) -> str:
        """The GET URL of ``statement`` (epoch µs; chunked when ``chunk_size``)."""
        params: dict[str, Any] = {"q": statement}
        if db:
            params["db"] = db
        params["epoch"] = "u"
        if chunk_size:
            params.update(chunked="true", chunk_size=chunk_size)
        params.update(self._auth)
        return f"{self.url}/query?{urllib.parse.urlencode(params)}"

    def query(
        self, statement: str, db: str | None = None, *, chunk_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The result objects of ``statement``, one chunk at a time (each ``{"series": [...]}``).

        The request is retried until the first chunk arrives; a failure later (the server gone
        mid-stream) raises at once: the caller has kept what it had."""
        url = self.query_url(statement, db, chunk_size=chunk_size)
        response = self._open(urllib.request.Request(url), statement)
        with response:
            for line in response:
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    raise ConnectorError(
                        f"{self.who}: {self.url} answered {statement!r} with bad JSON: {exc}"
                    ) from exc
                if "error" in doc:
                    raise ConnectorError(f"{self.who}: {self.url} refused {statement!r}: {doc['error']}")
                for result in doc.get("results", []):
                    if "error" in result:
                        raise ConnectorError(
                            f"{self.who}: {self.url} refused {statement!r}: {result['error']}"
                        )
                    yield result

    def execute(self, statement: str, db: str | None = None) -> list[dict[str, Any]]:
        """Run a statement (``CREATE DATABASE``...) by POST; its results."""
        params = {"q": statement, **({"db": db} if db else {}), **self._auth}
        request = urllib.request.Request(
            f"{self.url}/query", data=urllib.parse.urlencode(params).encode(), method="POST"
        )
        with self._open(request, statement) as response:
            doc = json.loads(response.read() or b"{}")
        for result in doc.get("results", []):
            if "error" in result:
                raise ConnectorError(f"{self.who}: {self.url} refused {statement!r}: {result['error']}")
        return list(doc.get("results", []))

    def write(self, db: str, lines: bytes, *, precision: str = "n") -> None:
        """Write line protocol to ``db`` (idempotent: a point with the same series and time is replaced)."""
        if not lines:
            return
        params = urllib.parse.urlencode({"db": db, "precision": precision, **self._auth})
        request = urllib.request.Request(
            f"{self.url}/write?{params}", data=lines, method="POST", headers={"Content-Type": "text/plain"}
        )
        count = lines.count(b"\n")
        with self._open(request, f"write of {count} line(s) to {db}"):
            pass

    def _open(self, request: urllib.request.Request, what: str) -> Any:
        def attempt() -> Any:
            try:
                return urllib.request.urlopen(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as exc:
                body = exc.read()[:500].decode("utf-8", errors="replace").strip()
                if exc.code < 500:  # the request itself is wrong: no retry helps
                    raise _Refused(f"HTTP {exc.code}: {body or exc.reason}") from exc
                raise OSError(f"HTTP {exc.code}: {body or exc.reason}") from exc

        tried = self.retry.call(attempt, stop=self.stop) if self.retry.retries else None
        if tried is None:
            try:
                return attempt()
            except (OSError, _Refused) as exc:
                raise ConnectorError(f"{self.who}: {what} at {self.url} failed: {_reason(exc)}") from exc
        if tried.error is not None:
            reason = _reason(tried.error)
            raise ConnectorError(
                f"{self.who}: {what} at {self.url} failed after {tried.attempts} attempt(s): {reason}"
            ) from tried.error
        return tried.value


class _Refused(Exception):
    """An HTTP 4xx answer."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc)
