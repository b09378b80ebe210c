"""A stand-in for LibreChat's session endpoints, with LibreChat's semantics.

What it copies (LibreChat's AuthController ``refreshController``, AuthService
``setAuthTokens``, the data-schemas ``generateToken`` and session methods):

- The session lives in an httpOnly ``refreshToken`` cookie (``SameSite=Strict``,
  ``Secure`` in production, ``Expires`` = the session's expiry, path ``/``): an HS256
  JWT with ``id`` and ``sessionId`` under ``JWT_REFRESH_SECRET``. The server keeps only
  its SHA-256.
- ``POST /api/auth/refresh`` without that cookie answers **200** with the plain text
  ``Refresh token not provided``; with a valid one, 200 ``{"token", "user"}`` and a new
  cookie (the old refresh token stops working: rotation); with a token whose session
  is gone, 401 ``Refresh token expired or not found for this user`` (403 ``No session
  found`` when called with ``?retry``); with one that does not verify, 403
  ``Invalid refresh token``.
- Access tokens are HS256 under ``JWT_SECRET`` with claims ``id``, ``username``,
  ``provider``, ``email``, ``iat`` and ``exp`` (LibreChat's default lifetime is 15 min).

It also answers ``POST /api/auth/login`` (``{"email", "password"}`` → the same cookie and
``{"token", "user"}``), and serves small ``/`` and ``/login`` pages for links to land on.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

SESSION_LIFETIME = timedelta(days=7)
ACCESS_LIFETIME = timedelta(minutes=15)


class LibreChatStandIn:
    """The state behind the endpoints: users, sessions, and what the tests count."""

    def __init__(self, jwt_secret: str, *, access_lifetime: timedelta = ACCESS_LIFETIME) -> None:
        self.jwt_secret = jwt_secret
        self.refresh_secret = secrets.token_urlsafe(32)
        self.access_lifetime = access_lifetime
        self.secure_cookies = False  # NODE_ENV=production behind TLS would set Secure
        self.refused_tokens = 0  # the next N access tokens are signed with a wrong key
        self.refresh_calls = 0
        self.users: dict[str, dict[str, Any]] = {}
        self._passwords: dict[str, str] = {}
        self._sessions: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- set-up ------------------------------------------------------------------

    def add_user(self, email: str, password: str, username: str = "") -> dict[str, Any]:
        """A local user with a Mongo-style 24-hex id."""
        user: dict[str, Any] = {
            "_id": uuid.uuid4().hex[:24],
            "name": username or email.partition("@")[0],
            "username": username or email.partition("@")[0],
            "email": email,
            "emailVerified": True,
            "provider": "local",
            "role": "USER",
            "avatar": None,
            "createdAt": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            self.users[user["_id"]] = user
            self._passwords[email] = password
        return user

    # -- LibreChat's behaviour ----------------------------------------------------

    def login(self, email: str, password: str) -> tuple[int, Any, list[str]]:
        with self._lock:
            if self._passwords.get(email) != password:
                return 401, {"message": "Email or password is incorrect."}, []
            user = next(u for u in self.users.values() if u["email"] == email)
            session_id = uuid.uuid4().hex[:24]
            self._sessions[session_id] = {
                "user": user["_id"],
                "expiration": datetime.now(UTC) + SESSION_LIFETIME,
                "hash": None,
            }
            return (
                200,
                {"token": self._access_token(user), "user": user},
                [self._rotate(session_id)],
            )

    def refresh(self, cookie_header: str | None, query: str) -> tuple[int, Any, list[str]]:
        with self._lock:
            self.refresh_calls += 1
            cookie = SimpleCookie(cookie_header or "")
            morsel = cookie.get("refreshToken")
            if morsel is None or not morsel.value:
                return 200, "Refresh token not provided", []
            token = morsel.value
            try:
                payload = jwt.decode(token, self.refresh_secret, algorithms=["HS256"])
            except jwt.InvalidTokenError:
                return 403, "Invalid refresh token", []
            session_id = str(payload.get("sessionId", ""))
            session = self._sessions.get(session_id)
            user = self.users.get(payload.get("id", ""))
            if user is None:
                return 401, "Unauthorized", []
            if (
                session is not None
                and session["hash"] == _sha256(token)
                and session["expiration"] > datetime.now(UTC)
            ):
                return (
                    200,
                    {"token": self._access_token(user), "user": user},
                    [self._rotate(session_id)],
                )
            if "retry" in parse_qs(query):
                return 403, "No session found", []
            return 401, "Refresh token expired or not found for this user", []

    def end_sessions(self) -> None:
        """Log every user out server-side (their cookies stop working)."""
        with self._lock:
            self._sessions.clear()

    # -- helpers -------------------------------------------------------------------

    def _access_token(self, user: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "id": user["_id"],
            "username": user["username"],
            "provider": user["provider"],
            "email": user["email"],
            "iat": now,
            "exp": now + int(self.access_lifetime.total_seconds()),
        }
        secret = self.jwt_secret
        if self.refused_tokens:
            self.refused_tokens -= 1
            secret = "a-signing-key-that-buytokens-does-not-know"
        return jwt.encode(claims, secret, algorithm="HS256")

    def _rotate(self, session_id: str) -> str:
        session = self._sessions[session_id]
        expires: datetime = session["expiration"]
        token = jwt.encode(
            {
                "id": session["user"],
                "sessionId": session_id,
                "iat": int(time.time()),
                "jti": secrets.token_hex(8),
                "exp": int(expires.timestamp()),
            },
            self.refresh_secret,
            algorithm="HS256",
        )
        session["hash"] = _sha256(token)
        attributes = f"Path=/; Expires={format_datetime(expires, usegmt=True)}; HttpOnly"
        if self.secure_cookies:
            attributes += "; Secure"
        return f"refreshToken={token}; {attributes}; SameSite=Strict"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


_PAGES = {
    "/": "<!doctype html><title>LibreChat</title><h1 id='chat'>LibreChat</h1>",
    "/login": "<!doctype html><title>Login | LibreChat</title><h1 id='login'>Welcome back</h1>",
}


def _handler(state: LibreChatStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            page = _PAGES.get(path)
            if page is None:
                self._answer(404, "Not Found", [])
            else:
                self._answer(200, page, [])

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if url.path == "/api/auth/refresh":
                self._answer(*state.refresh(self.headers.get("Cookie"), url.query))
            elif url.path == "/api/auth/login":
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                self._answer(*state.login(str(body.get("email")), str(body.get("password"))))
            else:
                self._answer(404, "Not Found", [])

        def _answer(self, status: int, body: Any, cookies: list[str]) -> None:
            if isinstance(body, str):
                # Express's res.send(string): text/html, as LibreChat answers without a session.
                data, kind = body.encode(), "text/html; charset=utf-8"
            else:
                data, kind = json.dumps(body).encode(), "application/json; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for cookie in cookies:
                self.send_header("Set-Cookie", cookie)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def running_librechat(state: LibreChatStandIn) -> Iterator[str]:
    """Serve ``state`` on a free loopback port; yields ``host:port``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="librechat", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
