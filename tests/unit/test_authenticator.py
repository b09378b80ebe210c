"""The bearer-token check: every check holds for a token seen before, as for a new one."""

from __future__ import annotations

import time

import jwt
import pytest

from buytokens.entrypoints.web.auth import Authenticator, Unauthorized

SECRET = "test-jwt-secret-0123456789abcdef"


def _token(expires_in: int = 3600, secret: str = SECRET, **claims: object) -> str:
    payload = {"id": "alice", "exp": int(time.time()) + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def test_a_token_seen_before_expires_on_time() -> None:
    """Verified once and remembered, a token is still refused once its exp has passed."""
    now = [time.time()]
    authenticator = Authenticator(SECRET, clock=lambda: now[0])
    token = _token(expires_in=60)
    assert authenticator.authenticate(f"Bearer {token}").id == "alice"
    now[0] += 30
    assert authenticator.authenticate(f"Bearer {token}").id == "alice"
    now[0] += 31
    with pytest.raises(Unauthorized, match="token expired"):
        authenticator.authenticate(f"Bearer {token}")
    with pytest.raises(Unauthorized, match="token expired"):  # and stays refused
        authenticator.authenticate(f"Bearer {token}")


def test_a_token_expiring_at_this_second_is_expired() -> None:
    """As PyJWT: exp equal to now is expired."""
    token = _token(expires_in=100)
    exp = jwt.decode(token, SECRET, algorithms=["HS256"])["exp"]
    now = [float(exp - 1)]
    authenticator = Authenticator(SECRET, clock=lambda: now[0])
    authenticator.authenticate(f"Bearer {token}")
    now[0] = float(exp)
    with pytest.raises(Unauthorized, match="token expired"):
        authenticator.authenticate(f"Bearer {token}")


def test_a_remembered_token_does_not_vouch_for_a_forged_one() -> None:
    """The same claims signed with another secret, or under another algorithm, are refused
    after the genuine token was accepted."""
    authenticator = Authenticator(SECRET)
    genuine = _token()
    authenticator.authenticate(f"Bearer {genuine}")
    forged = _token(secret="another-secret-0123456789abcdef!")
    with pytest.raises(Unauthorized, match="invalid token"):
        authenticator.authenticate(f"Bearer {forged}")
    claims = jwt.decode(genuine, SECRET, algorithms=["HS256"])
    other_algorithm = jwt.encode(claims, SECRET + SECRET, algorithm="HS512")
    with pytest.raises(Unauthorized, match="invalid token"):
        authenticator.authenticate(f"Bearer {other_algorithm}")
    tampered = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    with pytest.raises(Unauthorized, match="invalid token"):
        authenticator.authenticate(f"Bearer {tampered}")


def test_a_refused_token_is_refused_again() -> None:
    """A token without a user id is never remembered as good."""
    authenticator = Authenticator(SECRET)
    token = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="token has no user id"):
            authenticator.authenticate(f"Bearer {token}")


def test_the_tokens_remembered_are_bounded() -> None:
    """Past ``remembered`` distinct tokens, the oldest are forgotten, and all still verify."""
    authenticator = Authenticator(SECRET, remembered=8)
    tokens = [_token(expires_in=3600 + n) for n in range(20)]
    for token in tokens + tokens:
        assert authenticator.authenticate(f"Bearer {token}").id == "alice"
    assert len(authenticator._verified) <= 8
