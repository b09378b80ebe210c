"""The route that prices a package with a promo code before paying.

No ``from __future__ import annotations`` here: the injector reads the
``Annotated[..., Depends(Provide[...])]`` markers when the routes are decorated.
"""

from typing import Annotated

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web.code_routes import errors
from buytokens.entrypoints.web.ratelimit import RateLimiter
from buytokens.entrypoints.web.routes import Provided, User
from buytokens.entrypoints.web.schemas import PromoPreviewResponse
from buytokens.services.promos import PromoDesk, preview_promo

PREVIEW_PATH = "/api/custom/stripe/promo-codes/{code}"

router = APIRouter()


@router.get(
    PREVIEW_PATH,
    response_model=PromoPreviewResponse,
    responses=errors(400, 401, 422, 429, 503),
    tags=["checkout"],
)
@inject
async def preview(
    code: str,
    request: Request,
    user: User,
    desk: Annotated[PromoDesk, Depends(Provided[Container.promo_desk])],
    limiter: Annotated[RateLimiter, Depends(Provided[Container.redeem_rate_limiter])],
    package_id: Annotated[str, Query(alias="packageId", min_length=1, max_length=64)],
) -> PromoPreviewResponse:
    """The price of a package with a promo code (any case), before paying.

    400 ``invalid_promo_code`` (unknown, expired, disabled, not for this package;
    the message says which) or ``unknown_package``. Limits are decided when a
    checkout holds a use, so a code can still be used up by then. Lookups share
    the code redemption limits per user and per IP (429), which stops guessing.
    """
    limiter.hit(user.id, request.client.host if request.client else None)
    quote = await run_in_threadpool(preview_promo, desk, code, package_id)
    return PromoPreviewResponse(
        code=quote.code,
        packageId=quote.package_id,
        amount=quote.amount.amount,
        originalAmount=quote.original.amount,
        discountAmount=quote.discount.amount,
        currency=quote.amount.currency,
    )
