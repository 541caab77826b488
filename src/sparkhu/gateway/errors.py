"""The one place where sparkhu errors become API errors.

Every resolver and REST handler raises the families of :mod:`sparkhu.errors`; this module
maps them to a stable machine-readable code and an HTTP status:

==========================  ==========================  ======
error class                 code                        status
==========================  ==========================  ======
``NotFoundError``           ``NOT_FOUND``               404
``InputError``              ``BAD_INPUT``               400
``CostExceeded``            ``COST_EXCEEDED``           400
``TooManySubscriptions``    ``TOO_MANY_SUBSCRIPTIONS``  429
``LimitExceeded``           ``LIMIT_EXCEEDED``          400
``MutationsDisabled``       ``FORBIDDEN``               403
``AuthError``               ``UNAUTHENTICATED``         401
``GatewayError``            ``BAD_REQUEST``             400
``BackendUnavailable``      ``UNAVAILABLE``             503 (message hidden)
other ``SparkhuError``      ``INTERNAL``                500 (message hidden)
anything else               ``INTERNAL``                500 (message hidden)
==========================  ==========================  ======

Only the client's own mistakes (the ``NotFoundError``, ``InputError`` and ``GatewayError``
families) are answered with their message. Everything else is the server's trouble: it is
logged here, once, with its traceback, and the client gets a generic message, because storage
and backend errors name absolute paths, URIs and credentials that are nobody else's business.

GraphQL answers carry the code in ``errors[].extensions.code`` (the :class:`ErrorCodes`
schema extension); REST answers are ``{"error": {"code": ..., "message": ...}}``
(:func:`error_response`).

>>> error_info(NotFoundError("series a/b/c is not in the catalog"))
ErrorInfo(code='NOT_FOUND', status=404, message='series a/b/c is not in the catalog')
>>> error_info(KeyError("x")).message
'internal error; see the gateway log'
>>> from sparkhu.errors import LakeError
>>> error_info(LakeError("cannot read /srv/sparkhu/lake/raw/x.parquet")).message
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


class CostExceeded(LimitExceeded):
    """A request's estimated cost is over the gateway's budget per request."""

    def __init__(self, cost: int, budget: int) -> None:
        self.cost = cost
        self.budget = budget
        super().__init__(
            f"this request may cost {cost:,} (points and fields requested, over all aliases and "
            f"fields) and the gateway's budget per request is {budget:,}; ask for fewer points "
            "(limit, start/end), fewer aliases, or split the request"
        )


class TooManySubscriptions(LimitExceeded):
    """A WebSocket (or the whole gateway) already holds as many live operations as it allows."""


class MutationsDisabled(AuthError):
    """The gateway has no token configured, so every mutation is refused."""


class MetricsError(SparkhuError):
    """A gauge cannot be registered or set: bad name, name taken, or other label names.

    A fault of the code that sets the gauge, never of an API client, hence ``INTERNAL``.
    """


# Most specific first: the first matching class wins. The third column says whether the
# message is the client's to read (their own mistake) or the server's to keep (logged).
_CODES: tuple[tuple[type[Exception], str, int, bool], ...] = (
    (NotFoundError, "NOT_FOUND", 404, True),
    (InputError, "BAD_INPUT", 400, True),
    (CostExceeded, "COST_EXCEEDED", 400, True),
    (TooManySubscriptions, "TOO_MANY_SUBSCRIPTIONS", 429, True),
    (LimitExceeded, "LIMIT_EXCEEDED", 400, True),
    (MutationsDisabled, "FORBIDDEN", 403, True),
    (AuthError, "UNAUTHENTICATED", 401, True),
    (GatewayError, "BAD_REQUEST", 400, True),
    (BackendUnavailable, "UNAVAILABLE", 503, False),
    (SparkhuError, "INTERNAL", 500, False),
)
INTERNAL_MESSAGE = "internal error; see the gateway log"
UNAVAILABLE_MESSAGE = "a backend of the gateway is unavailable; see the gateway log"


@dataclass(frozen=True)
class ErrorInfo:
    """What an API client is told about an error."""

    code: str
    status: int
    message: str


def error_info(exc: BaseException) -> ErrorInfo:
    """The code, HTTP status and client-facing message for ``exc``.

    Errors that are not the client's doing are logged with their traceback and reported
    with a generic message (theirs may name server paths or URIs).
    """
    for cls, code, status, public in _CODES:
        if isinstance(exc, cls):
            if public:
                return ErrorInfo(code, status, str(exc))
            log.error("gateway request failed: %s", exc, exc_info=exc)
            return ErrorInfo(code, status, UNAVAILABLE_MESSAGE if status == 503 else INTERNAL_MESSAGE)
    log.error("unexpected error in the gateway", exc_info=exc)
    return ErrorInfo("INTERNAL", 500, INTERNAL_MESSAGE)


def is_client_error(exc: BaseException) -> bool:
    """True for the errors whose message is the client's to read (their own mistakes)."""
    return any(isinstance(exc, cls) and public for cls, _, _, public in _CODES)


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
    return original is None or is_client_error(original)


class ErrorCodes(MaskErrors):
    """Schema extension: give every GraphQL error an ``extensions.code``.

    Resolver errors get the code of their sparkhu class (unexpected ones are masked as
    ``INTERNAL``); errors found while parsing or validating the document (unknown fields,
    query too deep, malformed literals) get ``BAD_QUERY`` unless they wrap a sparkhu error,
    such as a malformed timestamp, or reject a variable's value (``BAD_INPUT`` both).
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _error: True)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        """Rebuild ``error`` with its code (and a safe message for unexpected errors)."""
        original = root_cause(error)
        if error.extensions and "code" in error.extensions:
            return error
        if original is None:
            # Values of variables that cannot be coerced (``inf`` for a Float, 1e400 for an Int) are
            # the client's input, not its document; graphql-core words those "Variable '$x' ...".
            code = "BAD_INPUT" if error.message.startswith("Variable '$") else "BAD_QUERY"
            message = error.message
        elif is_client_error(original):
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


def _graphql_message(error: GraphQLError, original: Exception) -> str:
    # Coercion errors ("Variable '$start' got invalid value ...") already embed our message
    # and add where it happened; resolver errors carry exactly str(original).
    return error.message if str(original) in error.message else str(original)
