"""The gateway's ASGI app: GraphQL (+ subscriptions), REST, metrics and the dashboard.

Routes:

==========================================  ================================================
``/graphql``                                GraphQL (GraphiQL in a browser; subscriptions over
                                            WebSocket, ``graphql-transport-ws``)
``GET /api/config``                         display timezone, limits, whether mutations work
``GET /api/series?prefix&limit``            series in the catalog
``GET /api/series/{id}``                    one series
``GET /api/series/{id}/points``             actuals ``?start&end&limit`` (columnar JSON)
``GET /api/series/{id}/predictions``        ``?start&end&limit&kind=blended|raw``
``GET /api/runs?kind&limit``                newest run records
``GET/PUT /retention/period``               the original retention API (:mod:`~sparkhu.gateway.retention`)
``POST /write``, ``/query``, ``/ping``      InfluxDB 1.x push for Telegraf (:mod:`~sparkhu.gateway.push`)
``POST /api/push``                          JSON push (Telegraf ``outputs.http``, scripts)
``/connectors...``                          Kafka-Connect-shaped API (:mod:`~sparkhu.gateway.connectors`)
``GET /healthz``                            liveness + catalog reachability
``GET /metrics``                            Prometheus text format
``/reports/<dataset>/<day>/<task>.html``    the pipeline's reports (when the services name their folder)
``/graphiql/...``                           GraphiQL's vendored assets (``GET /graphql`` in a browser)
``/``                                       the dashboard (static files)
==========================================  ================================================

Everything the app needs comes in one :class:`~sparkhu.gateway.services.GatewayServices` object, kept on
``app.state.services``; there is no global state. REST errors are
``{"error": {"code", "message"}}`` with the status from :mod:`sparkhu.gateway.errors`.
Serve it with uvicorn (``ws="websockets-sansio"`` avoids the deprecated legacy protocol).

>>> import tempfile
>>> from sparkhu.storage.catalog import Catalog
>>> from sparkhu.storage.lake import Lake
>>> from sparkhu.storage.predictions import PredictionStore
>>> with tempfile.TemporaryDirectory() as tmp:
...     catalog = Catalog(f"sqlite:///{tmp}/catalog.db")
...     services = GatewayServices(Lake(f"file://{tmp}/lake"), catalog, PredictionStore(catalog.engine))
...     app = create_app(services)
...     catalog.close()
>>> app.state.services is services, [route.path for route in app.routes][:3]
(True, ['/graphql', '/graphql', '/api/config'])
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from sparkhu.errors import ConfigError, InputError, NotFoundError, SparkhuError
from sparkhu.gateway import connectors, push, retention
from sparkhu.gateway import resolvers as r
from sparkhu.gateway.auth import mutations_enabled
from sparkhu.gateway.encoding import JSONAnswer
from sparkhu.gateway.errors import error_response
from sparkhu.gateway.metrics import CONTENT_TYPE, Metrics
from sparkhu.gateway.schema import build_schema
from sparkhu.gateway.services import GatewayServices
from sparkhu.gateway.types import call
from sparkhu.gateway.view import GatewayGraphQL
from sparkhu.storage.catalog import RunRecord, SeriesInfo
from sparkhu.timeaxis import parse_time, to_utc

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def _services(request: Request | WebSocket) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


# --- REST ------------------------------------------------------------------------------


def _series_json(info: SeriesInfo) -> dict[str, Any]:
    return {
        "id": info.series_id,
        "source": info.source,
        "measurement": info.measurement,
        "field": info.field,
        "unit": info.unit,
        "periodSeconds": info.period_s,
        "regular": info.regular,
        "firstTs": _iso(info.first_ts),
        "lastTs": _iso(info.last_ts),
        "count": info.count,
        "tags": dict(info.tags),
    }


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "kind": run.kind,
        "name": run.name,
        "status": run.status,
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "seriesId": run.series_id,
        "intervalStart": _iso(run.interval_start),
        "intervalEnd": _iso(run.interval_end),
        "rowsIn": run.rows_in,
        "rowsOut": run.rows_out,
        "error": run.error,
        "params": run.params,
    }


def _iso(value: Any) -> str | None:
    return None if value is None else to_utc(value).isoformat()


def _range_args(request: Request) -> tuple[Any, Any, int | None]:
    query = request.query_params
    return (
        parse_time(query.get("start") or None, "start"),
        parse_time(query.get("end") or None, "end"),
        r.parse_int(query.get("limit"), "limit"),
    )


async def api_config(request: Request) -> JSONResponse:
    """Display settings the dashboard needs."""
    services = _services(request)
    zone, dataset = services.actuals
    return JSONResponse(
        {
            "timezone": services.timezone,
            "maxPoints": services.settings.max_points,
            "mutationsEnabled": mutations_enabled(services.settings.token),
            "actuals": {"zone": zone, "dataset": dataset},
            "graphql": "/graphql",
        }
    )


async def api_series(request: Request) -> JSONResponse:
    """``GET /api/series?prefix&limit``."""
    limit = r.parse_int(request.query_params.get("limit"), "limit")
    prefix = request.query_params.get("prefix", "")
    records = await call(r.list_series, _services(request), prefix, 100 if limit is None else limit)
    return JSONResponse({"series": [_series_json(info) for info in records]})


async def api_series_one(request: Request) -> JSONResponse:
    """``GET /api/series/{id}``."""
    info = await call(r.get_series, _services(request), request.path_params["series_id"])
    return JSONResponse(_series_json(info))


async def api_points(request: Request) -> JSONResponse:
    """``GET /api/series/{id}/points?start&end&limit`` as columns ``ts`` and ``value``."""
    series_id = request.path_params["series_id"]
    start, end, limit = _range_args(request)
    services = _services(request)

    def answer() -> JSONResponse:
        table = r.read_points(services, series_id, start, end, limit)
        return JSONAnswer(
            {"seriesId": series_id, "count": table.num_rows, **r.columns(table, ("ts", "value"))}
        )

    return await call(answer)


async def api_predictions(request: Request) -> JSONResponse:
    """``GET /api/series/{id}/predictions?start&end&limit&kind=blended|raw``."""
    series_id = request.path_params["series_id"]
    start, end, limit = _range_args(request)
    kind = request.query_params.get("kind", "blended")
    if kind not in ("blended", "raw"):
        raise InputError(f"{kind!r} is not a prediction kind; use blended or raw", field="kind")
    services = _services(request)

    def answer() -> JSONResponse:
        if kind == "blended":
            table = r.read_blended(services, series_id, start, end, limit).rename_columns({"target_ts": "ts"})
            cols = r.columns(table, ("ts", "value", "lower", "upper", "updates"))
        else:
            table = r.read_raw(services, series_id, start, end, limit)
            table = table.rename_columns({"origin_ts": "origin", "target_ts": "target"})
            cols = r.columns(table, ("origin", "target", "step", "value", "lower", "upper", "model"))
        return JSONAnswer({"seriesId": series_id, "kind": kind, "count": table.num_rows, **cols})

    return await call(answer)


async def api_runs(request: Request) -> JSONResponse:
    """``GET /api/runs?kind&limit``."""
    limit = r.parse_int(request.query_params.get("limit"), "limit")
    kind = request.query_params.get("kind")
    runs = await call(r.recent_runs, _services(request), kind, 20 if limit is None else limit)
    return JSONResponse({"runs": [_run_json(run) for run in runs]})


async def api_unknown(request: Request) -> Response:
    """Unknown ``/api/...`` paths answer a JSON 404, not the dashboard."""
    return error_response(NotFoundError(f"no API route {request.url.path}; see /api/series"))


async def healthz(request: Request) -> JSONResponse:
    """Alive, and the catalog answers."""
    services = _services(request)
    try:
        await call(functools.partial(services.catalog.list_series, limit=1))
    except Exception as exc:  # any failure of the catalog means "not healthy", reported as such
        # The detail (paths, URIs) is for the operator's log, not for whoever probes the port.
        log.error("health check failed: the catalog does not answer: %s", exc, exc_info=exc)
        return JSONResponse(
            {"status": "unavailable", "error": "the catalog does not answer"}, status_code=503
        )
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the services' registry."""
    text = await call(_services(request).metrics.render)
    return Response(text, media_type=CONTENT_TYPE)


async def _sparkhu_error(request: Request, exc: Exception) -> Response:
    return error_response(exc)


# --- metrics middleware ----------------------------------------------------------------


class MetricsMiddleware:
    """Count requests and time them per route template; track open WebSockets."""

    def __init__(self, app: ASGIApp, registry: Metrics) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one request."""
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            elapsed = time.perf_counter() - started
            self.registry.observe_request(_route_label(scope), scope["method"], status, elapsed)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.registry.track_websocket():
            await self.app(scope, receive, send)


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    if isinstance(route, Mount):
        return "/ (dashboard)"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


# --- the app ---------------------------------------------------------------------------


def _reports(services: GatewayServices) -> list[BaseRoute]:
    """``/reports/<dataset>/<day>/<task>.html``: the pipeline's reports, linked from the runs grid."""
    if services.reports is None:
        return []
    files = StaticFiles(directory=services.reports, check_dir=False, html=True)
    return [Mount("/reports", files, name="reports")]


def create_app(services: GatewayServices) -> Starlette:
    """The gateway over ``services``; raises ConfigError for an unknown display timezone."""
    try:
        ZoneInfo(services.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"timezone: {services.timezone!r} is not an IANA time zone (e.g. Asia/Seoul, UTC)"
        ) from exc
    settings = services.settings
    schema = build_schema(
        max_depth=services.max_query_depth, max_points=settings.max_points, max_cost=settings.max_query_cost
    )
    graphql = GatewayGraphQL(schema, settings)
    sid = "{series_id:path}"
    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"], name="graphql"),
        WebSocketRoute("/graphql", graphql, name="graphql_ws"),
        Route("/api/config", api_config, methods=["GET"]),
        Route("/api/series", api_series, methods=["GET"]),
        Route(f"/api/series/{sid}/points", api_points, methods=["GET"]),
        Route(f"/api/series/{sid}/predictions", api_predictions, methods=["GET"]),
        Route(f"/api/series/{sid}", api_series_one, methods=["GET"]),
        Route("/api/runs", api_runs, methods=["GET"]),
        Route("/api/push", push.api_push, methods=["POST"]),
        Route("/api/{rest:path}", api_unknown),
        Route("/write", push.influx_write, methods=["POST"]),
        Route("/query", push.influx_query, methods=["GET", "POST"]),
        Route("/ping", push.influx_ping, methods=["GET", "HEAD"]),
        Route("/retention/period", retention.get_period, methods=["GET"]),
        Route("/retention/period", retention.put_period, methods=["PUT"]),
        *(Route(path, handler, methods=methods) for path, handler, methods in connectors.ROUTES),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *_reports(services),
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(MetricsMiddleware, registry=services.metrics)],
        # Exception: anything unforeseen is a coded JSON 500 (logged), never a plain-text page.
        exception_handlers={SparkhuError: _sparkhu_error, Exception: _sparkhu_error},
    )
    app.state.services = services
    return app
