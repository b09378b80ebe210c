"""LibreChat-style bearer tokens: HS256 JWTs with an ``id`` claim and a required ``exp``."""

from __future__ import annotations

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
    """Verifies access tokens with the shared secret; the algorithm is pinned to HS256."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "Authenticator()"

    def authenticate(self, authorization: str | None) -> AuthenticatedUser:
        """The user of an ``Authorization: Bearer <jwt>`` header; raises Unauthorized."""
        if not authorization:
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        try:
            claims = jwt.decode(
                token.strip(),
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
        return AuthenticatedUser(
            canonical_user_id(user_id), email if isinstance(email, str) and email else None
        )
