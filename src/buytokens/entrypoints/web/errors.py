"""The contract's error answers: which status an error of ours gets, and the JSON it carries."""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

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
from buytokens.entrypoints.web.auth import Unauthorized
from buytokens.entrypoints.web.ratelimit import RateLimited
from buytokens.entrypoints.web.webhook_route import PayloadTooLarge

log = logging.getLogger("buytokens.http")

# Most specific first: the first matching class decides the status.
_STATUS: tuple[tuple[type[BuyTokensError], int], ...] = (
    (Unauthorized, 401),
    (RateLimited, 429),
    (PayloadTooLarge, 413),
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


def domain_error_response(exc: BuyTokensError) -> JSONResponse:
    """The answer to one of our errors: its status, a ``Retry-After`` when a retry may
    succeed, and a log line for anything that is our fault or a dependency's (5xx)."""
    status = status_for(exc)
    headers = None
    if isinstance(exc, RateLimited | RetryableError):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 503:
        headers = {"Retry-After": "5"}
    if status >= 500:
        log.error("request failed: %s: %s", exc.code, exc.message)
    return error_response(status, exc.code, exc.message, headers)
