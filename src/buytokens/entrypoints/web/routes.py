"""The routes of CONTRACT.md: request schema, one use case, response schema.

No ``from __future__ import annotations`` here: the injector reads the
``Annotated[..., Depends(Provide[...])]`` markers when the routes are decorated.
"""

from functools import partial
from typing import TYPE_CHECKING, Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Header, Path
from starlette.concurrency import run_in_threadpool

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.money import currency_exponent
from buytokens.domain.purchases import Purchase
from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web.auth import AuthenticatedUser, Authenticator
from buytokens.entrypoints.web.provider_lane import ProviderLane
from buytokens.entrypoints.web.ratelimit import RateLimiter
from buytokens.entrypoints.web.schemas import (
    BalanceResponse,
    ErrorResponse,
    HealthResponse,
    IntentStatusResponse,
    PackageOut,
    PackagesResponse,
    PaymentMethodsResponse,
    PurchaseOut,
    PurchasesResponse,
)
from buytokens.ports.balances import AwaitableTransactions, BalanceRepository
from buytokens.services.buying import (
    BuyingDependencies,
    CheckingDependencies,
    check_payment_intent,
    purchases_of,
    recorded_check,
)
from buytokens.services.gifts import GiftCodes, gift_code_of

router = APIRouter()


def errors_of(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": ErrorResponse} for code in codes}


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
    responses=errors_of(401),
    tags=["catalogue"],
)
@inject
def payment_methods(user: User, buying: BuyingDep) -> PaymentMethodsResponse:
    """The payment methods offered for the catalogue's currency."""
    return PaymentMethodsResponse(paymentMethods=[m.value for m in buying.payment_methods])


@router.get(
    "/api/custom/stripe/payment-intents/{payment_intent_id}",
    response_model=IntentStatusResponse,
    responses=errors_of(401, 404, 429, 502, 503, 504),
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
    "/api/custom/balance",
    response_model=BalanceResponse,
    responses=errors_of(401),
    tags=["balance"],
)
@inject
def balance(user: User, store: StoreDep) -> BalanceResponse:
    """The caller's token credits."""
    return BalanceResponse(tokenCredits=store.balance(user.id))


@router.get(
    "/api/custom/stripe/purchases",
    response_model=PurchasesResponse,
    response_model_exclude_unset=True,
    responses=errors_of(401),
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


_awaitable_seen: list[tuple[object, bool]] = []


def transacts_awaitably(store: object) -> bool:
    """Whether ``store`` is ``AwaitableTransactions``; remembered for the last store asked."""
    if _awaitable_seen and _awaitable_seen[0][0] is store:
        return _awaitable_seen[0][1]
    answer = isinstance(store, AwaitableTransactions)
    _awaitable_seen[:] = [(store, answer)]
    return answer
