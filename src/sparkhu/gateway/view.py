"""The GraphQL endpoint: Strawberry's ASGI view, hardened for a shared server.

* HTTP operations run off the event loop (:func:`~sparkhu.gateway.types.off_loop`), their JSON
  encoded there too, in slices (:mod:`sparkhu.gateway.encoding`), so one big answer never stalls
  ``/healthz`` or other clients; at most
  ``EXECUTORS`` run at once, so they cannot take every worker thread from the REST routes.
* Queries and mutations sent over a WebSocket run off the loop as well; subscriptions stream
  on it (each delivers what one shared poller found, see :mod:`sparkhu.gateway.live`).
* WebSockets speak ``graphql-transport-ws`` only (the legacy ``graphql-ws`` protocol has no
  limits), hold at most ``gateway.max_subscriptions_per_connection`` live operations each and
  ``gateway.max_subscriptions`` together; one more is refused with a coded ``error`` message.
* A frame that is JSON but not a well-formed message (an array, a number, a payload that is
  not an object) closes the socket with 4400, as the protocol asks, instead of dropping it.
* Transport errors (a body that is not JSON, a missing query) are answered as coded GraphQL
  errors in JSON, not plain text.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
from cross_web import HTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message, SubscribeMessage
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from sparkhu.config import GatewaySettings
from sparkhu.gateway.encoding import RawJSON, dumps, dumps_text
from sparkhu.gateway.errors import TooManySubscriptions
from sparkhu.gateway.types import GatewayContext, off_loop

log = logging.getLogger(__name__)

EXECUTORS = 16
"""GraphQL operations executing at once (worker threads); more wait their turn."""

GRAPHIQL_PAGE = Path(__file__).resolve().parent.parent / "dashboard" / "static" / "graphiql" / "index.html"
"""GraphiQL served offline: its page loads the vendored assets under ``/graphiql/``, never a CDN."""

_MESSAGE_TYPES = frozenset({"connection_init", "ping", "pong", "subscribe", "complete"})


class _Encoded(dict[str, Any]):
    """A processed result whose JSON was already encoded off the event loop."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body


class _EncodedResult(ExecutionResult):
    body: bytes = b""


class GatewayTransportWS(BaseGraphQLTransportWSHandler[GatewayContext, None]):
    """graphql-transport-ws with a bound on live operations and strict message checks."""

    view: GatewayGraphQL

    async def handle(self) -> None:
        """Serve the socket, counted among the gateway's open ones."""
        self.view.sockets.add(self)
        try:
            await super().handle()
        finally:
            self.view.sockets.discard(self)

    async def handle_message(self, message: Message) -> None:
        """Close with 4400 on malformed messages; refuse operations over the bounds."""
        problem = _malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        if message["type"] == "subscribe":
            refusal = self._over_limit(message)
            if refusal is not None:
                payload = [{"message": str(refusal), "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"}}]
                await self.websocket.send_json({"id": message["id"], "type": "error", "payload": payload})
                return
        await super().handle_message(message)

    async def run_operation(self, operation: Operation[GatewayContext, None]) -> None:
        """Subscriptions stream on the event loop; queries and mutations run off it, as over HTTP."""
        if _is_subscription(operation.query, operation.operation_name):
            await super().run_operation(operation)
            return
        schema, context = self.schema, self.context

        async def work() -> list[object]:
            results: list[object] = []
            stream = await schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=context,
                operation_name=operation.operation_name,
            )
            async for result in stream:
                if isinstance(result, ExecutionResult) and not isinstance(result, PreExecutionError):
                    result.data = RawJSON(dumps_text(result.data))  # type: ignore[assignment]
                results.append(result)
            return results

        async def replay(results: list[object]) -> AsyncIterator[object]:
            for result in results:
                yield result

        try:
            results = await off_loop(work, self.view.executors())
            await self._send_result_stream(operation, replay(results))  # type: ignore[arg-type]
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    def _over_limit(self, message: SubscribeMessage) -> TooManySubscriptions | None:
        if not self.connection_acknowledged or message["id"] in self.operations:
            return None  # the protocol's own answers (4401, 4409) apply
        per_socket = self.view.settings.max_subscriptions_per_connection
        total = self.view.settings.max_subscriptions
        if len(self.operations) >= per_socket:
            reason = f"this connection already holds {len(self.operations)} operations (at most {per_socket})"
        elif self.view.open_operations() >= total:
            reason = f"the gateway already holds {total} live operations (its maximum)"
        else:
            return None
        return TooManySubscriptions(f"{reason}; complete one before starting another")


def _is_subscription(query: str, operation_name: str | None) -> bool:
    """Whether ``query`` runs a subscription (or cannot be parsed: strawberry reports that)."""
    try:
        document = parse(query)
    except GraphQLError:
        return True
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    return len(chosen) != 1 or chosen[0].operation == OperationType.SUBSCRIPTION


def _malformed(message: object) -> str | None:
    """Why ``message`` is not a graphql-transport-ws message we can act on, or None."""
    if not isinstance(message, Mapping):
        return f"a message must be a JSON object, not {type(message).__name__}"
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _MESSAGE_TYPES:
        return f"unknown message type {kind!r}"
    if kind in {"subscribe", "complete"} and not isinstance(message.get("id"), str):
        return f"a {kind} message needs a string id"
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, Mapping) or not isinstance(payload.get("query"), str):
            return "a subscribe message needs a payload object with a query string"
        if not isinstance(payload.get("variables") or {}, Mapping):
            return "subscribe payload.variables must be an object"
        if not isinstance(payload.get("operationName") or "", str):
            return "subscribe payload.operationName must be a string"
    if kind == "connection_init" and not isinstance(message.get("payload") or {}, Mapping):
        return "connection_init payload must be an object"
    return None


class GatewayGraphQL(GraphQL[GatewayContext, None]):
    """Strawberry's ASGI view with the gateway context, bounded WebSockets and off-loop execution."""

    graphql_transport_ws_handler_class = GatewayTransportWS

    def __init__(self, schema: BaseSchema, settings: GatewaySettings) -> None:
        super().__init__(
            schema,
            keep_alive=True,
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=None,  # ours, with a code: GatewayTransportWS
        )
        self.settings = settings
        self.sockets: set[GatewayTransportWS] = set()
        self._executors: anyio.CapacityLimiter | None = None

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the dashboard's vendored assets (strawberry's page loads them from a CDN)."""
        return HTMLResponse(GRAPHIQL_PAGE.read_text(encoding="utf-8"))

    def executors(self) -> anyio.CapacityLimiter:
        """The worker threads operations execute in (made on first use, inside the event loop)."""
        if self._executors is None:
            self._executors = anyio.CapacityLimiter(EXECUTORS)
        return self._executors

    def open_operations(self) -> int:
        """Live operations over every open socket."""
        return sum(len(socket.operations) for socket in self.sockets)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GatewayContext:
        """Give resolvers the services of the app that received the request."""
        return GatewayContext(services=request.app.state.services, request=request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer transport errors as coded JSON instead of plain text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as exc:
            code = "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL"
            body = {"data": None, "errors": [{"message": exc.reason, "extensions": {"code": code}}]}
            response = JSONResponse(body, status_code=exc.status_code)
        await response(scope, receive, send)

    async def execute_single(self, **kwargs: Any) -> ExecutionResult:  # type: ignore[override]
        """Execute (and encode) one operation in a worker thread with an event loop of its own."""

        async def work() -> ExecutionResult:
            result = await super(GatewayGraphQL, self).execute_single(**kwargs)
            encoded = _EncodedResult(data=result.data, errors=result.errors, extensions=result.extensions)
            processed = await GraphQL.process_result(self, kwargs["request"], result)
            try:
                encoded.body = dumps(processed)
            except ValueError:  # NaN in a JSON scalar: strawberry writes it as it always did
                body = super(GatewayGraphQL, self).encode_json(processed)
                encoded.body = body.encode("utf-8") if isinstance(body, str) else body
            return encoded

        return await off_loop(work, self.executors())

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """The encoded answer, when the worker made it; else strawberry's."""
        if isinstance(result, _EncodedResult):
            return _Encoded(result.body)  # type: ignore[return-value]  # a dict carrying its JSON
        return await super().process_result(request, result)

    def encode_json(self, data: object) -> str | bytes:
        """Strawberry's JSON, or the body the worker already encoded (WebSocket frames may embed it)."""
        if isinstance(data, _Encoded):
            return data.body
        if isinstance(data, list) and data and all(isinstance(item, _Encoded) for item in data):
            return b"[" + b",".join(item.body for item in data) + b"]"  # a batch
        try:
            return dumps_text(data)
        except ValueError:  # NaN in a JSON scalar: strawberry writes it as it always did
            return super().encode_json(data)


__all__ = ["EXECUTORS", "GatewayGraphQL", "GatewayTransportWS"]
