"""The routes of CONTRACT.md: request schema, one use case, response schema.

No ``from __future__ import annotations`` here: the injector reads the
``Annotated[..., Depends(Provide[...])]`` markers when the routes are decorated.
"""

import json
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, cast

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import BuyTokensError
from buytokens.domain.money import currency_exponent
from buytokens.domain.purchases import Purchase
from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web.auth import AuthenticatedUser, Authenticator
from buytokens.entrypoints.web.provider_lane import ProviderLane
from buytokens.entrypoints.web.ratelimit import RateLimiter
from buytokens.entrypoints.web.schemas import (
    BalanceResponse,
    CreateIntentRequest,
    CreateIntentResponse,
    ErrorResponse,
    HealthResponse,
    IntentStatusResponse,
    PackageOut,
    PackagesResponse,
    PaymentMethodsResponse,
    PurchaseOut,
    PurchasesResponse,
    WebhookResponse,
)
from buytokens.ports.balances import AwaitableTransactions, BalanceRepository
from buytokens.services.buying import (
    IDEMPOTENCY_KEY_ERRORS,
    BuyingDependencies,
    CheckingDependencies,
    CreatedIntent,
    PreparedIntent,
    check_payment_intent,
    create_payment_intent,
    prepare_payment_intent,
    purchases_of,
    record_payment_intent_awaiting,
    recorded_check,
)
from buytokens.services.gifts import GiftCodes, gift_code_of
from buytokens.services.webhooks import (
    WebhookDependencies,
    receive_webhook,
    receive_webhook_awaiting,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
WEBHOOK_MAX_BYTES = 1_000_000
WEBHOOK_PATH = "/api/custom/stripe/webhook"

router = APIRouter()


def _errors(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": ErrorResponse} for code in codes}


class PayloadTooLarge(BuyTokensError):
    """The request body is larger than this route accepts."""

    code = "payload_too_large"


if TYPE_CHECKING:
    Provided = Provide
else:

    class Provided(Provide):
        """A ``Provide`` marker that FastAPI resolves on the event loop.

        FastAPI runs every synchronous dependency in a worker thread. The marker
        itself does nothing (the injector swaps in the provided object), so an
        async ``__call__`` saves a thread hop per dependency per request.
        """

        async def __call__(self):
            return self


@inject
async def current_user(
    authenticator: Annotated[Authenticator, Depends(Provided[Container.authenticator])],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> AuthenticatedUser:
    """The caller, from a verified bearer token (401 otherwise)."""
    return authenticator.authenticate(authorization)


User = Annotated[AuthenticatedUser, Depends(current_user)]
CatalogueDep = Annotated[Catalogue, Depends(Provided[Container.catalogue])]
StoreDep = Annotated[BalanceRepository, Depends(Provided[Container.store])]
BuyingDep = Annotated[BuyingDependencies, Depends(Provided[Container.buying])]
CheckingDep = Annotated[CheckingDependencies, Depends(Provided[Container.checking])]
LaneDep = Annotated[ProviderLane, Depends(Provided[Container.provider_lane])]


@router.get("/healthz", response_model=HealthResponse, tags=["operations"])
def healthz() -> HealthResponse:
    """Liveness probe."""
    return HealthResponse()


@router.get("/api/custom/stripe/packages", response_model=PackagesResponse, tags=["catalogue"])
@inject
def packages(catalogue: CatalogueDep) -> PackagesResponse:
    """The token packages on sale, prices in minor units."""
    return PackagesResponse(
        currency=catalogue.currency,
        exponent=currency_exponent(catalogue.currency),
        packages=[
            PackageOut(
                id=p.id,
                label=p.label,
                tokens=p.tokens,
                amount=p.price.amount,
                originalAmount=p.shown_original_price.amount,
                discountPercent=p.discount_percent,
                popular=p.popular,
            )
            for p in catalogue
        ],
    )


@router.get(
    "/api/custom/stripe/payment-methods",
    response_model=PaymentMethodsResponse,
    responses=_errors(401),
    tags=["catalogue"],
)
@inject
def payment_methods(user: User, buying: BuyingDep) -> PaymentMethodsResponse:
    """The payment methods offered for the catalogue's currency."""
    return PaymentMethodsResponse(paymentMethods=[m.value for m in buying.payment_methods])


class _CreateIntentRoute(APIRoute):
    """The create-intent route, answered without FastAPI's parameter solving when it can be.

    A JSON request whose body is a valid ``CreateIntentRequest`` is parsed,
    authenticated and answered here directly; anything else (another content
    type, a body that does not parse or validate) goes through FastAPI's own
    handler, which gives the usual answers in the usual order. The declared
    endpoint below still defines the route's OpenAPI description.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()

        async def handler(request: Request) -> Response:
            body = _plain_create_request(request.headers.get("content-type"), await request.body())
            if body is None:
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
    responses=_errors(400, 401, 402, 409, 422, 429, 502, 503, 504),
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
    awaitable = _transacts_awaitably(store)
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


@router.get(
    "/api/custom/stripe/payment-intents/{payment_intent_id}",
    response_model=IntentStatusResponse,
    responses=_errors(401, 404, 429, 502, 503, 504),
    tags=["checkout"],
)
@inject
async def payment_intent_status(
    payment_intent_id: Annotated[str, Path(min_length=1, max_length=255)],
    user: User,
    checking: CheckingDep,
    lane: LaneDep,
    limiter: Annotated[RateLimiter, Depends(Provided[Container.check_rate_limiter])],
) -> IntentStatusResponse:
    """The return-page check: a settled purchase is answered from the store; otherwise
    the intent is fetched from Stripe (limited per user) and credited as the webhook would."""
    store = checking.crediting.store
    check = await run_in_threadpool(recorded_check, store, user.id, payment_intent_id)
    if check is None:
        limiter.hit(user.id, None)
        check = await lane.run(partial(check_payment_intent, checking, user.id, payment_intent_id))
    return IntentStatusResponse(status=check.status.value, tokenCredits=check.token_credits)


@router.get(
    "/api/custom/balance", response_model=BalanceResponse, responses=_errors(401), tags=["balance"]
)
@inject
def balance(user: User, store: StoreDep) -> BalanceResponse:
    """The caller's token credits."""
    return BalanceResponse(tokenCredits=store.balance(user.id))


@router.get(
    "/api/custom/stripe/purchases",
    response_model=PurchasesResponse,
    response_model_exclude_unset=True,
    responses=_errors(401),
    tags=["balance"],
)
@inject
def purchases(
    user: User,
    store: StoreDep,
    gifts: Annotated[GiftCodes | None, Depends(Provided[Container.gift_codes])],
) -> PurchasesResponse:
    """The caller's own purchases, newest first; a paid gift shows its code (to its buyer
    only: this list is the buyer's own) and whether it was redeemed."""
    return PurchasesResponse(
        success=True, purchases=[_purchase_out(p, gifts) for p in purchases_of(store, user.id)]
    )


def _purchase_out(p: Purchase, gifts: GiftCodes | None) -> PurchaseOut:
    out = PurchaseOut(
        paymentIntentId=p.payment_intent_id,
        packageId=p.package_id,
        tokens=p.tokens,
        amount=None if p.price is None else p.price.amount,
        currency=None if p.price is None else p.price.currency,
        exponent=None if p.price is None else p.price.exponent,
        status=p.status.value,
        createdAt=p.created_at.isoformat(),
    )
    view = None if gifts is None else gift_code_of(gifts, p)
    if view is not None:
        out.giftCode = None if view.code is None else view.code.display()
        out.giftRedeemed = view.redeemed
    return out


def _webhook_answer(disposition: Disposition) -> bytes:
    return bytes(JSONResponse(WebhookResponse(outcome=disposition.value).model_dump()).body)


# The webhook's answers are the same bytes for every request of one outcome.
_WEBHOOK_ANSWERS = {disposition: _webhook_answer(disposition) for disposition in Disposition}


@router.post(
    WEBHOOK_PATH,
    response_model=WebhookResponse,
    responses=_errors(400, 413, 500, 503),
    tags=["stripe"],
)
async def webhook(request: Request) -> Response:
    """Stripe's signed events. 200 once the outcome is durably stored (processed, duplicate,
    ignored, or flagged for review); 400 for anything not genuinely from Stripe; 5xx only
    for a transient failure Stripe should retry."""
    # In the app, ``HttpEdge`` serves this path with ``answer_webhook`` before routing;
    # this route documents it and serves it wherever the router is used without the edge.
    payload = await _read_capped(request, WEBHOOK_MAX_BYTES)
    answer = await answer_webhook(
        request.app.state.container, payload, request.headers.get("stripe-signature")
    )
    return Response(answer, media_type="application/json")


async def answer_webhook(container: Container, payload: bytes, signature: str | None) -> bytes:
    """The webhook's answer to one delivery (a JSON body, status 200), once its outcome is
    durably stored; a ``BuyTokensError`` for anything else (see ``webhook``)."""
    # The provider, not an injected parameter: overrides of the container still apply.
    webhooks: WebhookDependencies = container.webhooks()
    store = webhooks.events.store
    if _transacts_awaitably(store):
        # The check and the parse here (as cheap as a thread hop); the store's writer
        # reads, decides and commits, and this awaits its durable commit.
        applied = await receive_webhook_awaiting(
            webhooks, cast(AwaitableTransactions, store), payload, signature
        )
    else:
        # The store blocks: run it off the event loop.
        applied = await run_in_threadpool(receive_webhook, webhooks, payload, signature)
    return _WEBHOOK_ANSWERS[applied.disposition]


_awaitable_seen: list[tuple[object, bool]] = []


def _transacts_awaitably(store: object) -> bool:
    """Whether ``store`` is ``AwaitableTransactions``; remembered for the last store asked."""
    if _awaitable_seen and _awaitable_seen[0][0] is store:
        return _awaitable_seen[0][1]
    answer = isinstance(store, AwaitableTransactions)
    _awaitable_seen[:] = [(store, answer)]
    return answer


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"webhook bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"webhook bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
