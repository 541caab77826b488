"""The connector REST API, shaped like Kafka Connect's, so the original's registration requests work
with only ``connector.class`` changed (:mod:`sparkhu.connectors.declared` translates the config).

=========================================  ==========================================================
``GET /connectors``                        names (``?expand=status``/``info``: by name, as Connect)
``POST /connectors {name, config}``        declare → 201 ``{name, config, tasks, type}``; 409 if taken
``GET /connectors/{name}``                 ``{name, config, tasks, type}``
``GET /connectors/{name}/config``          the config
``PUT /connectors/{name}/config``          declare or change → 201 / 200
``GET /connectors/{name}/status``          ``{name, connector: {state, worker_id}, tasks: [...], type}``
``PUT /connectors/{name}/pause|resume``    → 202
``POST /connectors/{name}/restart``        → 204
``DELETE /connectors/{name}``              → 204
=========================================  ==========================================================

Reads are open; every change needs the gateway token (``Authorization: Bearer``, as every mutation).
Errors answer as Connect does: ``{"error_code": <status>, "message": ...}``. The running platform
picks a change up within a second (:mod:`sparkhu.app.connectors`); the status says what it runs.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sparkhu.connectors.declared import ConnectorStatus, Declared, DeclaredConnectors, specs_of
from sparkhu.errors import AuthError, ConfigError, NotFoundError, SparkhuError
from sparkhu.gateway.auth import check_token
from sparkhu.gateway.errors import MutationsDisabled, error_info
from sparkhu.gateway.types import call

__all__ = ["ROUTES", "connector_json", "status_json"]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": status, "message": message}, status_code=status)


def _failure(exc: Exception) -> JSONResponse:
    if isinstance(exc, ConfigError):
        return _error(400, str(exc))
    if isinstance(exc, NotFoundError):
        return _error(404, str(exc))
    info = error_info(exc)
    return _error(info.status, info.message)


def _declared(request: Request) -> DeclaredConnectors:
    return DeclaredConnectors(request.app.state.services.catalog)


def _refused(request: Request) -> JSONResponse | None:
    try:
        check_token(request.app.state.services.settings.token, request.headers.get("authorization"))
    except (AuthError, MutationsDisabled) as exc:
        return _error(error_info(exc).status, str(exc))
    return None


def _type(declared: Declared) -> str:
    return "sink" if str(declared.config.get("connector.class", "")).endswith("lake") else "source"


def connector_json(declared: Declared) -> dict[str, Any]:
    """``{name, config, tasks, type}`` as Connect answers (config values as given)."""
    try:
        tasks = [
            {"connector": declared.name, "task": n}
            for n, _ in enumerate(specs_of(declared.name, declared.config))
        ]
    except ConfigError:
        tasks = []
    config = {**declared.config, "name": declared.name}
    return {"name": declared.name, "config": config, "tasks": tasks, "type": _type(declared)}


def status_json(declared: Declared, status: ConnectorStatus) -> dict[str, Any]:
    """``{name, connector: {state, worker_id}, tasks, type}`` as Connect answers, with sparkhu's figures."""
    return {
        "name": declared.name,
        "connector": {"state": status.state, "worker_id": status.worker_id},
        "tasks": status.tasks,
        "type": _type(declared),
        "updated_at": status.updated_at,
    }


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise ConfigError(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ConfigError("request body must be a JSON object")
    return body


async def list_connectors(request: Request) -> Response:
    """``GET /connectors[?expand=status|info]``."""
    declared = _declared(request)
    try:
        items = await call(declared.all)
        expand = request.query_params.getlist("expand")
        if not expand:
            return JSONResponse([d.name for d in items])
        out: dict[str, Any] = {}
        for item in items:
            entry: dict[str, Any] = {}
            if "info" in expand:
                entry["info"] = connector_json(item)
            if "status" in expand:
                entry["status"] = status_json(item, await call(declared.status, item.name))
            out[item.name] = entry
        return JSONResponse(out)
    except SparkhuError as exc:
        return _failure(exc)


async def create_connector(request: Request) -> Response:
    """``POST /connectors {name, config}``."""
    refused = _refused(request)
    if refused is not None:
        return refused
    declared = _declared(request)
    try:
        body = await _body(request)
        name, config = body.get("name"), body.get("config")
        if not isinstance(name, str) or not isinstance(config, dict):
            raise ConfigError('expected {"name": "<name>", "config": {"connector.class": ..., ...}}')
        if await call(declared.exists, name):
            return _error(409, f"connector {name} already exists")
        await call(declared.put, name, config)
        return JSONResponse(connector_json(await call(declared.get, name)), status_code=201)
    except SparkhuError as exc:
        return _failure(exc)


async def get_connector(request: Request) -> Response:
    """``GET /connectors/{name}``."""
    try:
        return JSONResponse(connector_json(await call(_declared(request).get, request.path_params["name"])))
    except SparkhuError as exc:
        return _failure(exc)


async def get_config(request: Request) -> Response:
    """``GET /connectors/{name}/config``."""
    try:
        declared = await call(_declared(request).get, request.path_params["name"])
        return JSONResponse({**declared.config, "name": declared.name})
    except SparkhuError as exc:
        return _failure(exc)


async def put_config(request: Request) -> Response:
    """``PUT /connectors/{name}/config {connector.class, ...}``."""
    refused = _refused(request)
    if refused is not None:
        return refused
    name = request.path_params["name"]
    declared = _declared(request)
    try:
        config = await _body(request)
        if config.get("name", name) != name:
            raise ConfigError(f"config name {config['name']!r} differs from the path's {name!r}")
        created = await call(declared.put, name, config)
        return JSONResponse(
            connector_json(await call(declared.get, name)), status_code=201 if created else 200
        )
    except SparkhuError as exc:
        return _failure(exc)


async def get_status(request: Request) -> Response:
    """``GET /connectors/{name}/status``."""
    declared = _declared(request)
    name = request.path_params["name"]
    try:
        item = await call(declared.get, name)
        return JSONResponse(status_json(item, await call(declared.status, name)))
    except SparkhuError as exc:
        return _failure(exc)


async def pause(request: Request) -> Response:
    """``PUT /connectors/{name}/pause``."""
    return await _change(request, lambda d, n: d.set_state(n, "PAUSED"), 202)


async def resume(request: Request) -> Response:
    """``PUT /connectors/{name}/resume``."""
    return await _change(request, lambda d, n: d.set_state(n, "RUNNING"), 202)


async def restart(request: Request) -> Response:
    """``POST /connectors/{name}/restart``."""
    return await _change(request, lambda d, n: d.restart(n), 204)


async def delete(request: Request) -> Response:
    """``DELETE /connectors/{name}``."""
    return await _change(request, lambda d, n: d.delete(n), 204)


async def _change(request: Request, action: Any, status: int) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    try:
        await call(action, _declared(request), request.path_params["name"])
    except SparkhuError as exc:
        return _failure(exc)
    return Response(status_code=status)


ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/connectors", list_connectors, ["GET"]),
    ("/connectors", create_connector, ["POST"]),
    ("/connectors/{name}", get_connector, ["GET"]),
    ("/connectors/{name}", delete, ["DELETE"]),
    ("/connectors/{name}/config", get_config, ["GET"]),
    ("/connectors/{name}/config", put_config, ["PUT"]),
    ("/connectors/{name}/status", get_status, ["GET"]),
    ("/connectors/{name}/pause", pause, ["PUT"]),
    ("/connectors/{name}/resume", resume, ["PUT"]),
    ("/connectors/{name}/restart", restart, ["POST"]),
]
"""(path, handler, methods) of the API, in the order the app mounts them."""
