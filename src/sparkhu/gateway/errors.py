"""The one place where sparkhu errors become API errors.

Every resolver and REST handler raises the families of :mod:`sparkhu.errors`; this module
maps them to a stable machine-readable code and an HTTP status:

=======================  ====================  ======
error class              code                  status
=======================  ====================  ======
``NotFoundError``        ``NOT_FOUND``         404
``InputError``           ``BAD_INPUT``         400
``LimitExceeded``        ``LIMIT_EXCEEDED``    400
``MutationsDisabled``    ``FORBIDDEN``         403
``AuthError``            ``UNAUTHENTICATED``   401
``GatewayError``         ``BAD_REQUEST``       400
``BackendUnavailable``   ``UNAVAILABLE``       503
other ``SparkhuError``   ``INTERNAL``          500
anything else            ``INTERNAL``          500 (message hidden)
=======================  ====================  ======

GraphQL answers carry the code in ``errors[].extensions.code`` (the :class:`ErrorCodes`
schema extension); REST answers are ``{"error": {"code": ..., "message": ...}}``
(:func:`error_response`).

>>> error_info(NotFoundError("series a/b/c is not in the catalog"))
ErrorInfo(code='NOT_FOUND', status=404, message='series a/b/c is not in the catalog')
>>> error_info(KeyError("x")).message
'internal error; see the gateway log'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from graphql.error import GraphQLError
from starlette.responses import JSONResponse
from strawberry.extensions import MaskErrors

from sparkhu.errors import (
    AuthError,
    BackendUnavailable,
    GatewayError,
    InputError,
    NotFoundError,
    SparkhuError,
)

log = logging.getLogger(__name__)


class LimitExceeded(GatewayError):
    """A query asked for (or would return) more points than the gateway allows."""


class MutationsDisabled(AuthError):
    """The gateway has no token configured, so every mutation is refused."""


class MetricsError(SparkhuError):
    """A gauge cannot be registered or set: bad name, name taken, or other label names.

    A fault of the code that sets the gauge, never of an API client, hence ``INTERNAL``.
    """


# Most specific first: the first matching class wins.
_CODES: tuple[tuple[type[Exception], str, int], ...] = (
    (NotFoundError, "NOT_FOUND", 404),
    (InputError, "BAD_INPUT", 400),
    (LimitExceeded, "LIMIT_EXCEEDED", 400),
    (MutationsDisabled, "FORBIDDEN", 403),
    (AuthError, "UNAUTHENTICATED", 401),
    (GatewayError, "BAD_REQUEST", 400),
    (BackendUnavailable, "UNAVAILABLE", 503),
    (SparkhuError, "INTERNAL", 500),
)
INTERNAL_MESSAGE = "internal error; see the gateway log"


@dataclass(frozen=True)
class ErrorInfo:
    """What an API client is told about an error."""

    code: str
    status: int
    message: str


def error_info(exc: BaseException) -> ErrorInfo:
    """The code, HTTP status and client-facing message for ``exc``.

    Errors that are not sparkhu's own are logged with their traceback and reported as
    ``INTERNAL`` without their message (it may leak internals).
    """
    for cls, code, status in _CODES:
        if isinstance(exc, cls):
            return ErrorInfo(code, status, str(exc))
    log.error("unexpected error in the gateway", exc_info=exc)
    return ErrorInfo("INTERNAL", 500, INTERNAL_MESSAGE)


def error_response(exc: BaseException) -> JSONResponse:
    """A REST error answer: ``{"error": {"code", "message"}}`` with the mapped status."""
    info = error_info(exc)
    return JSONResponse({"error": {"code": info.code, "message": info.message}}, status_code=info.status)


def root_cause(error: GraphQLError) -> Exception | None:
    """The exception behind a GraphQL error, unwrapping errors graphql-core nests in errors."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return None if isinstance(original, GraphQLError) else original


def is_expected(error: GraphQLError) -> bool:
    """True for errors that are the client's doing (no traceback worth logging)."""
    original = root_cause(error)
    return original is None or isinstance(original, SparkhuError)


class ErrorCodes(MaskErrors):
    """Schema extension: give every GraphQL error an ``extensions.code``.

    Resolver errors get the code of their sparkhu class (unexpected ones are masked as
    ``INTERNAL``); errors found while parsing or validating the document (unknown fields,
    query too deep, malformed literals) get ``BAD_QUERY`` unless they wrap a sparkhu error,
    such as a malformed timestamp (``BAD_INPUT``).
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _error: True)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        """Rebuild ``error`` with its code (and a safe message for unexpected errors)."""
        original = root_cause(error)
        if error.extensions and "code" in error.extensions:
            return error
        if original is None:
            code, message = "BAD_QUERY", error.message
        elif isinstance(original, SparkhuError):
            info = error_info(original)
            code, message = info.code, _graphql_message(error, original)
        else:
            info = error_info(original)
            code, message = info.code, info.message
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=original,
            extensions={**(error.extensions or {}), "code": code},
        )


def _graphql_message(error: GraphQLError, original: SparkhuError) -> str:
    # Coercion errors ("Variable '$start' got invalid value ...") already embed our message
    # and add where it happened; resolver errors carry exactly str(original).
    return error.message if str(original) in error.message else str(original)
