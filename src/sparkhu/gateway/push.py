"""HTTP push endpoints: InfluxDB 1.x's ``/write`` (Telegraf ``outputs.influxdb``) and JSON (``outputs.http``).

==================================  ====================================================================
``POST /write?db&precision``        line protocol (gzip or plain), as InfluxDB 1.x takes it → 204
``POST /query?q=CREATE DATABASE..`` accepted and ignored (Telegraf creates its database at start)
``GET|HEAD /ping``                  204, with InfluxDB's version header
``POST /api/push?db&precision``     JSON: Telegraf metrics or sparkhu points → 200 ``{points, quarantined}``
==================================  ====================================================================

Every push needs the gateway token, like every mutation (:mod:`sparkhu.gateway.auth`); so that
Telegraf needs no change it may come the ways InfluxDB takes credentials: ``Authorization: Bearer
<token>`` or ``Token <token>``, HTTP Basic with the token as password (``username``/``password`` of
``outputs.influxdb``), or ``p=<token>`` in the query. Points land in ``raw/<db>_<measurement>`` before
the answer (:func:`sparkhu.connectors.push.land_pushed`); bad lines are quarantined with their reason
(``quarantine/<db>_push``) and the good ones of the same body are kept. A body with bad lines answers
400 ``{"error": "partial write: ..."}`` naming the first, as InfluxDB does, so Telegraf logs it and does
not send the body again.
"""

from __future__ import annotations

import base64
import gzip
import urllib.parse
import zlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sparkhu.connectors.push import Landed, decode_json, land_pushed
from sparkhu.errors import AuthError, CodecError, SparkhuError
from sparkhu.gateway.auth import bearer_token, check_token
from sparkhu.gateway.errors import MutationsDisabled, error_info
from sparkhu.gateway.types import call
from sparkhu.stream.lineproto import PRECISION_US, parse_lines

__all__ = ["api_push", "influx_ping", "influx_query", "influx_write", "push_token"]

_MAX_BODY = 64 << 20
_VERSION = {"X-Influxdb-Version": "1.8.10-sparkhu", "X-Influxdb-Build": "sparkhu"}


def push_token(request: Request) -> str | None:
    """The token a push request carries in any of the forms InfluxDB clients send (see the module)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode("utf-8").partition(":")[2] or None
        except (ValueError, UnicodeDecodeError):
            return None
    if scheme.lower() == "token":
        return value.strip() or None
    return bearer_token(header) or request.query_params.get("p") or None


def _influx_error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_VERSION)


def _checked(request: Request) -> JSONResponse | None:
    token = push_token(request)
    try:
        check_token(request.app.state.services.settings.token, None if token is None else f"Bearer {token}")
    except (AuthError, MutationsDisabled) as exc:
        return _influx_error(str(exc), error_info(exc).status)
    return None


async def _body(request: Request) -> bytes:
    data = await request.body()
    if len(data) > _MAX_BODY:
        raise CodecError(f"request body of {len(data)} bytes is over {_MAX_BODY} bytes")
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise CodecError(f"body is not valid gzip: {exc}") from exc
    return data


def _db(request: Request, default: str | None) -> str:
    db = request.query_params.get("db") or default
    if not db:
        raise CodecError("database is required: add ?db=<name> (the series' source)")
    return db


def _precision(request: Request, default: str) -> str:
    precision = request.query_params.get("precision") or default
    if precision not in PRECISION_US:
        raise CodecError(f"precision {precision!r} is not one of {', '.join(PRECISION_US)}")
    return precision


async def influx_write(request: Request) -> Response:
    """``POST /write?db&precision``: line protocol, as InfluxDB 1.x."""
    refused = _checked(request)
    if refused is not None:
        return refused
    services = request.app.state.services
    try:
        db, precision = _db(request, None), _precision(request, "ns")
        body = await _body(request)
        points, bad = parse_lines(body, db, source=f"push /write db={db}", precision=precision)
        landed: Landed = await call(land_pushed, services.lake, services.catalog, db, points, bad)
    except CodecError as exc:
        return _influx_error(str(exc), 400)
    except SparkhuError as exc:
        info = error_info(exc)
        return _influx_error(info.message, info.status)
    if landed.quarantined:
        message = f"partial write: {landed.quarantined} line(s) quarantined; first: {landed.first_problem}"
        return _influx_error(message, 400)
    return Response(status_code=204, headers=_VERSION)


async def influx_query(request: Request) -> Response:
    """``/query``: only ``CREATE DATABASE`` (what Telegraf sends at start) is answered, as done."""
    refused = _checked(request)
    if refused is not None:
        return refused
    statement = request.query_params.get("q")
    if statement is None and request.method == "POST":  # a form body; parsed here, no extra dependency
        fields = urllib.parse.parse_qs((await request.body()).decode("utf-8", errors="replace"))
        statement = (fields.get("q") or [""])[0]
    if statement and statement.strip().upper().startswith("CREATE DATABASE"):
        return JSONResponse({"results": [{"statement_id": 0}]}, headers=_VERSION)
    return _influx_error("only CREATE DATABASE is served here; read series through /graphql or /api", 400)


async def influx_ping(request: Request) -> Response:
    """``/ping``: 204 with InfluxDB's version header."""
    return Response(status_code=204, headers=_VERSION)


async def api_push(request: Request) -> Response:
    """``POST /api/push?db&precision``: JSON metrics (Telegraf's serializer) or sparkhu points."""
    refused = _checked(request)
    if refused is not None:
        return refused
    services = request.app.state.services
    try:
        db, precision = _db(request, "push"), _precision(request, "s")
        body = await _body(request)
        points, bad = decode_json(body, db, precision=precision, source=f"push /api/push db={db}")
        landed: Landed = await call(land_pushed, services.lake, services.catalog, db, points, bad)
    except (CodecError, ValueError) as exc:
        return JSONResponse({"error": {"code": "BAD_INPUT", "message": str(exc)}}, status_code=400)
    status = 400 if landed.quarantined else 200
    return JSONResponse(
        {
            "points": points.num_rows,
            "new": landed.points,
            "quarantined": landed.quarantined,
            "datasets": landed.datasets,
            **(
                {"error": {"code": "BAD_INPUT", "message": landed.first_problem}}
                if landed.quarantined
                else {}
            ),
        },
        status_code=status,
    )
