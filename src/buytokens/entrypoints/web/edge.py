"""The outermost layer of every HTTP request: its id, its body limit and its log line,
and the webhook's lean path.

One plain ASGI middleware that reads the request's headers once, from the raw
scope. ``@app.middleware("http")`` would run each request in an extra task with
in-memory streams, and Starlette's ``Headers`` and ``URL`` objects cost more per
request than everything else here together.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from json.encoder import encode_basestring_ascii

from starlette.datastructures import URL
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buytokens.domain.errors import BuyTokensError
from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web import webhook_route
from buytokens.entrypoints.web.errors import domain_error_response, error_response

log = logging.getLogger("buytokens.http")

REQUEST_MAX_BYTES = 16_384
"""The largest body any route but the webhook takes: a checkout request is under 1 kB."""


def _limit(size: int) -> tuple[int, str]:
    return size, webhook_route.limit_message(size)


_LIMITS = {webhook_route.WEBHOOK_PATH: _limit(webhook_route.WEBHOOK_MAX_BYTES)}
_DEFAULT_LIMIT = _limit(REQUEST_MAX_BYTES)

REQUEST_ID_HEADER = b"x-request-id"
_CALLER_ID_MAX = 64


class RequestIds:
    """Request ids: 32 lowercase hex digits, unique across requests and processes.

    A random prefix per process and a counter: the shape of ``uuid4().hex`` for
    a fraction of its price (one ``os.urandom`` per process, not per request). A
    forked child draws its own prefix, so its ids cannot repeat its parent's.
    """

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._pid = -1
        self._prefix = ""

    def next(self) -> str:
        """A new id."""
        if self._pid != os.getpid():
            self._prefix = os.urandom(8).hex()
            self._pid = os.getpid()
        return f"{self._prefix}{next(self._counter):016x}"


def request_line(request_id: str, method: str, path: str, status: int, ms: float) -> str:
    """The request log's JSON line, byte for byte what ``json.dumps`` makes of it.

    Built directly: every string goes through the escaping ``json.dumps`` uses,
    the float through the ``repr`` it uses, without encoding a dict each time.
    """
    return (
        f'{{"event": "request", "request_id": {encode_basestring_ascii(request_id)}, '
        f'"method": {encode_basestring_ascii(method)}, "path": {encode_basestring_ascii(path)}, '
        f'"status": {int(status)}, "ms": {float(ms)!r}}}'
    )


# A path Starlette's URL would give back unchanged: it escapes ?, # and \, drops tabs
# and line breaks, and rewrites a leading // when the request has no Host.
_PLAIN_PATH = re.compile(r"/(?!/)[^?#\\\t\r\n]*")


def logged_path(scope: Scope) -> str:
    """The request's path as ``URL(scope=scope).path`` gives it (never the query string,
    which can carry a payment intent's client secret)."""
    path: str = scope["path"]
    if _PLAIN_PATH.fullmatch(path):
        return path
    return URL(scope=scope).path


class HttpEdge:
    """Tags every response with ``X-Request-ID``, refuses over-long bodies, logs one JSON
    line per request, and serves Stripe's webhook.

    The caller's ``X-Request-ID`` is kept when it is printable and at most 64
    characters; otherwise one is minted. A declared ``Content-Length`` over the
    route's limit is answered 413 at once; a body without one is counted as it
    is read, and reading past the limit ends in the same 413.

    ``POST`` to the webhook's path is answered here, by the route's own
    ``answer_webhook``, without the router, a ``Request`` or a ``Response``: the
    route stays in the app for its OpenAPI entry and its other methods. Its
    errors get the answers the app's handlers give; an unexpected exception
    goes on to the app's server-error handling, as it would from the route.
    """

    def __init__(self, app: ASGIApp, *, container: Container) -> None:
        self.app = app
        self._container = container
        self._ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        declared: bytes | None = None
        caller_id: bytes | None = None
        signature: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if declared is None:
                    declared = value
            elif name == REQUEST_ID_HEADER:
                if caller_id is None:
                    caller_id = value
            elif name == b"stripe-signature" and signature is None:
                signature = value
        request_id = caller_id.decode("latin-1") if caller_id else ""
        if not request_id or len(request_id) > _CALLER_ID_MAX or not request_id.isprintable():
            request_id = self._ids.next()
        tag = (REQUEST_ID_HEADER, request_id.encode("latin-1"))
        status = 0

        async def send_tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0] != REQUEST_ID_HEADER]
                headers.append(tag)
                message["headers"] = headers
            await send(message)

        path: str = scope["path"]
        limit, too_large = _LIMITS.get(path, _DEFAULT_LIMIT)
        if declared is not None and (not declared.isdigit() or len(declared) > 18):
            await error_response(400, "bad_request", "invalid Content-Length")(
                scope, receive, send_tagged
            )
        elif declared is not None and int(declared) > limit:
            await error_response(413, webhook_route.PayloadTooLarge.code, too_large)(
                scope, receive, send_tagged
            )
        elif path == webhook_route.WEBHOOK_PATH and scope["method"] == "POST":
            status = await self._webhook(
                scope,
                receive,
                send,
                send_tagged,
                tag,
                None if signature is None else signature.decode("latin-1"),
            )
        else:
            received = 0

            async def counted() -> Message:
                nonlocal received
                event = await receive()
                if event["type"] == "http.request":
                    received += len(event.get("body", b""))
                    if received > limit:
                        raise StarletteHTTPException(413, too_large)
                return event

            await self.app(scope, counted, send_tagged)
        if log.isEnabledFor(logging.INFO):
            ms = round((time.perf_counter() - started) * 1000, 1)
            log.info(request_line(request_id, scope["method"], logged_path(scope), status, ms))

    async def _webhook(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        send_tagged: Send,
        tag: tuple[bytes, bytes],
        signature: str | None,
    ) -> int:
        """Read the body (counted against the limit), answer it; the status sent."""
        try:
            payload = await webhook_route.read_capped(receive, webhook_route.WEBHOOK_MAX_BYTES)
            answer = await webhook_route.answer_webhook(self._container, payload, signature)
        except BuyTokensError as exc:
            failure = domain_error_response(exc)
            await failure(scope, receive, send_tagged)
            return failure.status_code
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", b"%d" % len(answer)),
                    (b"content-type", b"application/json"),
                    tag,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        return 200
