"""``create_app()``: the FastAPI application, its error shape and its request log."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from buytokens._version import __version__
from buytokens.domain.errors import BuyTokensError
from buytokens.entrypoints.container import Container, create_container
from buytokens.entrypoints.web import (
    checkout_route,
    code_routes,
    promo_routes,
    routes,
    webhook_route,
)
from buytokens.entrypoints.web.edge import HttpEdge
from buytokens.entrypoints.web.errors import domain_error_response, error_response, status_for
from buytokens.entrypoints.web.maintenance import lifespan
from buytokens.entrypoints.web.page import build_page_router

__all__ = ["create_app", "error_response", "status_for"]

log = logging.getLogger("buytokens.http")

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: webhook_route.PayloadTooLarge.code,
}


def create_app(container: Container | None = None) -> FastAPI:
    """Build the app on ``container`` (from the environment when omitted). No I/O here."""
    container = container or create_container()
    container.wire(modules=[routes, checkout_route, code_routes, promo_routes])
    app = FastAPI(
        title="buytokens",
        version=__version__,
        summary="Sell token packages through Stripe and credit them exactly once.",
        lifespan=lifespan,
    )
    app.state.container = container
    app.include_router(routes.router)
    app.include_router(checkout_route.router)
    app.include_router(webhook_route.router)
    app.include_router(code_routes.router)
    app.include_router(promo_routes.router)
    app.include_router(build_page_router(container.settings()))
    _install_error_handlers(app)
    _trust_proxies(app, container.settings().trusted_proxies)
    _install_request_log(app, container)
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
        return domain_error_response(exc)

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


def _install_request_log(app: FastAPI, container: Container) -> None:
    # Added last, so the outermost of the app's middleware: every answer passes through it.
    app.add_middleware(HttpEdge, container=container)
