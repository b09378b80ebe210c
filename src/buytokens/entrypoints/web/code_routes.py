"""The route that redeems a code: request schema, one use case, response schema.

No ``from __future__ import annotations`` here: the injector reads the
``Annotated[..., Depends(Provide[...])]`` markers when the routes are decorated.
The code is in the body, never in the path, so the request log never sees it.
"""

from typing import Annotated

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web.ratelimit import RateLimiter
from buytokens.entrypoints.web.routes import Provided, User
from buytokens.entrypoints.web.schemas import ErrorResponse, RedeemRequest, RedeemResponse
from buytokens.services.codes import CodeDesk, redeem_code

REDEEM_PATH = "/api/custom/gifts/redeem"

router = APIRouter()


def errors(*codes: int) -> dict[int | str, dict[str, object]]:
    """The OpenAPI ``responses`` of a route answering these error statuses."""
    return {code: {"model": ErrorResponse} for code in codes}


@router.post(
    REDEEM_PATH,
    response_model=RedeemResponse,
    responses=errors(401, 404, 409, 410, 422, 429, 503),
    tags=["codes"],
)
@inject
async def redeem(
    body: RedeemRequest,
    request: Request,
    user: User,
    desk: Annotated[CodeDesk, Depends(Provided[Container.code_desk])],
    limiter: Annotated[RateLimiter, Depends(Provided[Container.redeem_rate_limiter])],
) -> RedeemResponse:
    """Redeem a code (any case, dashes optional) for the caller: its tokens, once.

    409 ``gift_already_redeemed``; 404 ``gift_not_found`` for a code that is
    unknown, mistyped or expired (the message says which mistake, if any); 410
    ``gift_void``; attempts are limited per user and per IP (429, ``Retry-After``).
    """
    limiter.hit(user.id, request.client.host if request.client else None)
    redeemed = await run_in_threadpool(redeem_code, desk, user.id, body.code)
    return RedeemResponse(tokens=redeemed.tokens, tokenCredits=redeemed.token_credits)
