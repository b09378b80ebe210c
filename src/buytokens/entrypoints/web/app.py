"""``create_app()``: the FastAPI application, its error shape and its request log."""

from __future__ import annotations

import json
import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import URL, Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from buytokens._version import __version__
from buytokens.domain.errors import (
    BuyTokensError,
    ConfigurationError,
    GatewayRejected,
    GatewayTimeout,
    GiftAlreadyRedeemed,
    GiftVoid,
    IdempotencyConflict,
    InvalidWebhook,
    NotFound,
    PaymentDeclined,
    RetryableError,
    UserError,
)
from buytokens.entrypoints.container import Container, create_container
from buytokens.entrypoints.web import code_routes, promo_routes, routes
from buytokens.entrypoints.web.auth import Unauthorized
from buytokens.entrypoints.web.maintenance import lifespan
from buytokens.entrypoints.web.page import build_page_router
from buytokens.entrypoints.web.ratelimit import RateLimited

log = logging.getLogger("buytokens.http")

# Most specific first: the first matching class decides the status.
_STATUS: tuple[tuple[type[BuyTokensError], int], ...] = (
    (Unauthorized, 401),
    (RateLimited, 429),
    (routes.PayloadTooLarge, 413),
    (InvalidWebhook, 400),
    (NotFound, 404),
    (PaymentDeclined, 402),
    (IdempotencyConflict, 409),
    (GiftAlreadyRedeemed, 409),
    (GiftVoid, 410),
    (UserError, 400),
    (ConfigurationError, 503),
    (GatewayTimeout, 504),
    (RetryableError, 503),
    (GatewayRejected, 502),
)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: routes.PayloadTooLarge.code,
}

REQUEST_MAX_BYTES = 16_384
"""The largest body any route but the webhook takes: a checkout request is under 1 kB."""


def status_for(error: BuyTokensError) -> int:
    """The HTTP status an error of this kind answers with."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The contract's error shape."""
    body = {"success": False, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(container: Container | None = None) -> FastAPI:
    """Build the app on ``container`` (from the environment when omitted). No I/O here."""
    container = container or create_container()
    container.wire(modules=[routes, code_routes, promo_routes])
    app = FastAPI(
        title="buytokens",
        version=__version__,
        summary="Sell token packages through Stripe and credit them exactly once.",
        lifespan=lifespan,
    )
    app.state.container = container
    app.include_router(routes.router)
    app.include_router(code_routes.router)
    app.include_router(promo_routes.router)
    app.include_router(build_page_router(container.settings()))
    _install_error_handlers(app)
    _install_request_log(app)
    _trust_proxies(app, container.settings().trusted_proxies)
    return app


def _trust_proxies(app: FastAPI, proxies: tuple[str, ...]) -> None:
    """Take the client address from ``X-Forwarded-For``, but only from these peers.

    Behind a reverse proxy every request arrives from the proxy's address, so the
    per-IP limits would lump all buyers together; from any other peer the header
    is a claim anyone can make, and is ignored.
    """
    if proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(proxies))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BuyTokensError)
    async def domain_error(request: Request, exc: BuyTokensError) -> JSONResponse:
        status = status_for(exc)
        headers = None
        if isinstance(exc, RateLimited | RetryableError):
            headers = {"Retry-After": str(exc.retry_after)}
        elif status == 503:
            headers = {"Retry-After": "5"}
        if status >= 500:
            log.error("request failed: %s: %s", exc.code, exc.message)
        return error_response(status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'] if p != 'body') or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RecursionError):
            # FastAPI's JSON parsing gave up on the nesting; say so rather than "error".
            return error_response(400, "invalid_json", "the JSON body is nested too deeply")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "an unexpected error occurred")


def _install_request_log(app: FastAPI) -> None:
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestLog)  # added last, so outermost: it logs what BodyLimit refuses


class BodyLimit:
    """Refuses request bodies larger than their route takes, before anything parses them.

    A declared ``Content-Length`` over the limit is answered 413 at once; a chunked
    body is counted as it is read, and reading past the limit ends in the same 413.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            routes.WEBHOOK_MAX_BYTES if scope["path"] == routes.WEBHOOK_PATH else REQUEST_MAX_BYTES
        )
        message = f"request bodies are limited to {limit:,} bytes"
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 18):
            await error_response(400, "bad_request", "invalid Content-Length")(scope, receive, send)
            return
        if declared is not None and int(declared) > limit:
            await error_response(413, routes.PayloadTooLarge.code, message)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, message)
            return event

        await self.app(scope, counted, send)


class RequestLog:
    """Tags every response with ``X-Request-ID`` and logs one JSON line per request.

    A plain ASGI middleware: ``@app.middleware("http")`` would run each request
    in an extra task with in-memory streams, which costs more than the rest of
    this middleware put together.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex
        if len(request_id) > 64 or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        started = time.perf_counter()
        status = 0

        async def send_tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_tagged)
        if log.isEnabledFor(logging.INFO):
            # The path only: query strings can carry a payment intent's client secret.
            log.info(
                json.dumps(
                    {
                        "event": "request",
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": URL(scope=scope).path,
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    }
                )
            )
