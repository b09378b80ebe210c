"""LibreChat-style bearer tokens: HS256 JWTs with an ``id`` claim and a required ``exp``."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import jwt

from buytokens.domain.errors import BuyTokensError
from buytokens.domain.users import canonical_user_id


class Unauthorized(BuyTokensError):
    """No valid bearer token."""

    code = "unauthorized"


@attrs.frozen(repr=False)
class AuthenticatedUser:
    """Who is calling, from a verified token."""

    id: str
    email: str | None = None


class Authenticator:
    """Verifies access tokens with the shared secret; the algorithm is pinned to HS256.

    A client sends the same token with every request until it expires, so the
    tokens verified lately are remembered with their user and expiry: the same
    token (the same bytes, so the same algorithm and a signature already found
    valid) is then only checked for expiry again, against ``clock`` (seconds
    since the epoch), as PyJWT checks it. At most ``remembered`` tokens are
    kept; a token that failed any check is never remembered.
    """

    def __init__(
        self, secret: str, *, remembered: int = 4096, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._remembered = remembered
        self._clock = clock
        self._verified: dict[str, tuple[AuthenticatedUser, int]] = {}

    def __repr__(self) -> str:
        return "Authenticator()"

    def authenticate(self, authorization: str | None) -> AuthenticatedUser:
        """The user of an ``Authorization: Bearer <jwt>`` header; raises Unauthorized."""
        if not authorization:
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        token = token.strip()
        known = self._verified.get(token)
        if known is not None:
            user, expires = known
            if expires > self._clock():  # PyJWT: expired once exp <= now
                return user
            raise Unauthorized("token expired")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None
        user_id = claims.get("id")
        if not isinstance(user_id, str) or not user_id.strip():
            raise Unauthorized("token has no user id")
        email = claims.get("email")
        user = AuthenticatedUser(
            canonical_user_id(user_id), email if isinstance(email, str) and email else None
        )
        if len(self._verified) >= self._remembered:
            self._verified.clear()
        self._verified[token] = (user, int(claims["exp"]))  # as PyJWT compares it
        return user
