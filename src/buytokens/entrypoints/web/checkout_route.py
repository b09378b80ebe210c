"""``POST /api/custom/stripe/create-payment-intent``: the one route that calls Stripe to sell.

No ``from __future__ import annotations`` here: the injector reads the
``Annotated[..., Depends(Provide[...])]`` markers when the routes are decorated.
"""

import json
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any, cast

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web.auth import AuthenticatedUser
from buytokens.entrypoints.web.provider_lane import ProviderLane
from buytokens.entrypoints.web.ratelimit import RateLimiter
from buytokens.entrypoints.web.routes import (
    BuyingDep,
    LaneDep,
    Provided,
    User,
    errors_of,
    transacts_awaitably,
)
from buytokens.entrypoints.web.schemas import CreateIntentRequest, CreateIntentResponse
from buytokens.ports.balances import AwaitableTransactions
from buytokens.services.buying import (
    IDEMPOTENCY_KEY_ERRORS,
    BuyingDependencies,
    CreatedIntent,
    PreparedIntent,
    create_payment_intent,
    prepare_payment_intent,
    record_payment_intent_awaiting,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"

router = APIRouter()


class _CreateIntentRoute(APIRoute):
    """The create-intent route, answered without FastAPI's parameter solving when it can be.

    A JSON request whose body is a valid ``CreateIntentRequest`` is parsed,
    authenticated and answered here directly; anything else (another content
    type, a body that does not parse or validate) goes through FastAPI's own
    handler, which gives the usual answers in the usual order, and so does an
    app with ``dependency_overrides`` set, so that they apply. The declared
    endpoint below still defines the route's OpenAPI description.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()

        async def handler(request: Request) -> Response:
            body = _plain_create_request(request.headers.get("content-type"), await request.body())
            if body is None or request.app.dependency_overrides:
                # FastAPI's handler honours ``app.dependency_overrides`` (tests, embedders).
                return await standard(request)
            container: Container = request.app.state.container
            user = container.authenticator().authenticate(request.headers.get("authorization"))
            created = await _create_intent(
                request,
                body,
                user,
                container.buying(),
                container.provider_lane(),
                container.rate_limiter(),
                request.headers.get(IDEMPOTENCY_HEADER),
            )
            return Response(_intent_answer(created), media_type="application/json")

        return handler


def _plain_create_request(content_type: str | None, payload: bytes) -> CreateIntentRequest | None:
    """The body of an ordinary create-intent request; None for anything FastAPI should judge."""
    if content_type is None or content_type.partition(";")[0].strip().lower() != (
        "application/json"
    ):
        return None
    try:
        parsed = json.loads(payload)
    except (ValueError, RecursionError):  # FastAPI's handler answers these its own way
        return None
    if not isinstance(parsed, dict):
        return None
    try:
        return CreateIntentRequest.model_validate(parsed)
    except ValidationError:
        return None


def _intent_answer(created: CreatedIntent) -> bytes:
    """The JSON of ``CreateIntentResponse`` (``None`` left out), as FastAPI would render it."""
    answer: dict[str, object] = {
        "success": True,
        "clientSecret": created.snapshot.client_secret,
        "amount": created.amount.amount,
        "currency": created.amount.currency,
        "exponent": created.amount.exponent,
        "paymentIntentId": created.snapshot.id,
        "status": created.snapshot.status,
    }
    if created.discount is not None:
        answer["discountAmount"] = created.discount.amount
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@inject
async def create_intent(
    body: CreateIntentRequest,
    request: Request,
    user: User,
    buying: BuyingDep,
    lane: LaneDep,
    limiter: Annotated[RateLimiter, Depends(Provided[Container.rate_limiter])],
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> Response:
    """Create a payment intent for a package; the price comes from the catalogue only.

    The same ``Idempotency-Key`` from the same user returns the same intent; the
    same key for another package or method is a 409. With ``promoCode`` the intent
    charges the discounted price and the answer adds ``discountAmount``; a code that
    is unknown, expired, disabled, used up, not for this package or already used by
    the caller is 400 ``invalid_promo_code`` (the message says which).
    """
    created = await _create_intent(request, body, user, buying, lane, limiter, idempotency_key)
    return Response(_intent_answer(created), media_type="application/json")


router.add_api_route(
    "/api/custom/stripe/create-payment-intent",
    create_intent,
    methods=["POST"],
    response_model=CreateIntentResponse,
    response_model_exclude_none=True,
    responses=errors_of(400, 401, 402, 409, 422, 429, 502, 503, 504),
    tags=["checkout"],
    route_class_override=_CreateIntentRoute,
)


async def _create_intent(
    request: Request,
    body: CreateIntentRequest,
    user: AuthenticatedUser,
    buying: BuyingDependencies,
    lane: ProviderLane,
    limiter: RateLimiter,
    idempotency_key: str | None,
) -> CreatedIntent:
    limiter.hit(user.id, request.client.host if request.client else None)
    store = buying.store
    awaitable = transacts_awaitably(store)
    # Stripe may hang: on the lane's threads, never on the shared pool.
    call = prepare_payment_intent if awaitable else create_payment_intent
    try:
        outcome = await lane.run(
            partial(
                call,
                buying,
                user.id,
                body.packageId,
                body.paymentMethod,
                idempotency_key=idempotency_key,
                email=user.email,
                gift=body.gift,
                promo_code=body.promoCode,
            )
        )
        if not awaitable:  # the store blocks: it wrote on the lane's thread, after Stripe
            return cast(CreatedIntent, outcome)
        # Stripe has answered: the loop awaits the durable write, no thread waits on it.
        return await record_payment_intent_awaiting(
            buying, cast(AwaitableTransactions, store), cast(PreparedIntent, outcome)
        )
    except IDEMPOTENCY_KEY_ERRORS as exc:
        raise exc.naming(IDEMPOTENCY_HEADER) from exc
