"""Bearer-token checks for mutations.

Queries and subscriptions are open; every mutation needs ``Authorization: Bearer <token>``
matching :attr:`sparkhu.config.GatewaySettings.token` (compared in constant time). With no
token configured (or a blank one), mutations are disabled altogether: :func:`mutations_enabled`
is the one test, used by the mutation check and by ``/api/config``.

>>> check_token("s3cret", "Bearer s3cret")
>>> check_token("s3cret", "Bearer nope")
Traceback (most recent call last):
...
sparkhu.errors.AuthError: invalid bearer token; send the gateway token as Authorization: Bearer <token>
"""

from __future__ import annotations

import hmac

from sparkhu.errors import AuthError
from sparkhu.gateway.errors import MutationsDisabled

_SCHEME = "bearer"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if absent/other scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != _SCHEME or not token.strip():
        return None
    return token.strip()


def mutations_enabled(expected: str | None) -> bool:
    """True when a token is configured: a blank one enables nothing.

    >>> mutations_enabled("s3cret"), mutations_enabled(""), mutations_enabled("  "), mutations_enabled(None)
    (True, False, False, False)
    """
    return expected is not None and bool(expected.strip())


def check_token(expected: str | None, authorization: str | None) -> None:
    """Raise unless ``authorization`` carries ``expected``.

    :class:`~sparkhu.gateway.errors.MutationsDisabled` when no token is configured,
    :class:`~sparkhu.errors.AuthError` when the header is missing or wrong.
    """
    if expected is None or not mutations_enabled(expected):
        raise MutationsDisabled(
            "mutations are disabled: the gateway has no token; set gateway.token "
            "(SPARKHU_GATEWAY__TOKEN) and restart it"
        )
    given = bearer_token(authorization)
    if given is None:
        raise AuthError("missing bearer token; send Authorization: Bearer <token>")
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise AuthError("invalid bearer token; send the gateway token as Authorization: Bearer <token>")
