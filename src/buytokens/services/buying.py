"""Buying: creating a payment intent, and the return page's check of it.

Calling style (see ``buytokens.services``): ``create_payment_intent(deps, ...)``
with a ``BuyingDependencies``; ``check_payment_intent(deps, ...)`` with a
``CheckingDependencies``; ``recorded_check`` and ``purchases_of`` with the store alone.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from datetime import timedelta

import attrs

from buytokens.domain.catalogue import (
    Catalogue,
    PaymentMethod,
    TokenPackage,
    require_payment_method,
)
from buytokens.domain.checkout import IntentRequest, IntentSnapshot
from buytokens.domain.errors import IdempotencyConflict, NotFound, RetryableError, UserError
from buytokens.domain.events import AttemptOutcome
from buytokens.domain.money import Money
from buytokens.domain.promotions import PromoRejection, refuse, require_promo_code
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.ports.balances import AwaitableTransactions, BalanceRepository
from buytokens.ports.checkout import AwaitableCheckoutKeys, CheckoutKeys
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.payments import PaymentGateway
from buytokens.ports.promos import PromoCodes
from buytokens.services.crediting import CreditingDependencies, apply_payment_event
from buytokens.services.gifts import GiftCodes, index_gift
from buytokens.services.promos import PromoDesk, hold_promo

# A reservation whose request never finished (the process died) may be taken over
# after this long; the derived purchase id keeps the provider call idempotent.
STALE_RESERVATION = timedelta(seconds=60)
MAX_IDEMPOTENCY_KEY = 255


@attrs.frozen
class BuyingDependencies:
    """What creating a payment intent needs.

    The catalogue prices it, ``payment_methods`` are the methods offered for its
    currency (which ones can pay in which currency is the provider's fact, given
    by the composition root), ``keys`` remember clients' idempotency keys, and the
    store records the pending purchase.
    """

    catalogue: Catalogue
    payment_methods: tuple[PaymentMethod, ...]
    store: BalanceRepository
    gateway: PaymentGateway
    keys: CheckoutKeys
    clock: Clock
    ids: IdSource
    gifts: GiftCodes | None = None
    """Where gift codes are indexed; without it nothing can be bought as a gift."""
    promos: PromoCodes | None = None
    """Promo codes and their uses; without it every promo code is unknown."""


@attrs.frozen
class CheckingDependencies:
    """What the return-page check needs: the gateway to ask, and the crediting path."""

    crediting: CreditingDependencies
    gateway: PaymentGateway


@attrs.frozen
class CreatedIntent:
    """A payment intent ready for the page to confirm."""

    snapshot: IntentSnapshot
    amount: Money
    discount: Money | None = None  # what a promo code took off the package's price


@attrs.frozen
class PreparedIntent:
    """An intent the provider has created, and what is left to record before answering it.

    ``purchase`` is the pending purchase to add (None when an earlier request with
    the same key recorded it); ``key`` the caller's idempotency key to complete
    once it is recorded (None without a key, or when there is nothing to record).
    """

    created: CreatedIntent
    user_id: str
    purchase: Purchase | None = None
    key: str | None = None


@attrs.frozen
class IntentCheck:
    """The return-page answer: where the purchase stands and the user's balance."""

    status: PurchaseStatus
    token_credits: int


KEY_NAME = "idempotency key"
"""How these errors name a client's idempotency key until its caller names it (``naming``)."""


class InvalidIdempotencyKey(UserError):
    """The idempotency key is empty, too long or not printable."""

    code = "invalid_idempotency_key"

    def __init__(self, max_length: int, *, key_name: str = KEY_NAME) -> None:
        super().__init__(f"{key_name} must be 1-{max_length} printable characters")
        self.max_length = max_length

    def naming(self, key_name: str) -> InvalidIdempotencyKey:
        """The same error, naming the key as the client knows it (e.g. an HTTP header)."""
        return InvalidIdempotencyKey(self.max_length, key_name=key_name)


class IdempotencyKeyReused(IdempotencyConflict):
    """The idempotency key was first used for another request (``first_request``)."""

    def __init__(self, first_request: str, *, key_name: str = KEY_NAME) -> None:
        super().__init__(
            f"this {key_name} was already used for a different request ({first_request})"
        )
        self.first_request = first_request

    def naming(self, key_name: str) -> IdempotencyKeyReused:
        """The same error, naming the key as the client knows it (e.g. an HTTP header)."""
        return IdempotencyKeyReused(self.first_request, key_name=key_name)


class RequestInProgress(RetryableError):
    """The same idempotency key is being served by another request right now."""

    code = "request_in_progress"

    def __init__(self, *, key_name: str = KEY_NAME) -> None:
        super().__init__(f"the first request with this {key_name} is still running")

    def naming(self, key_name: str) -> RequestInProgress:
        """The same error, naming the key as the client knows it (e.g. an HTTP header)."""
        return RequestInProgress(key_name=key_name)


IDEMPOTENCY_KEY_ERRORS = (InvalidIdempotencyKey, IdempotencyKeyReused, RequestInProgress)
"""The errors about a client's idempotency key: an entrypoint catches them to say ``naming``."""


def create_payment_intent(
    deps: BuyingDependencies,
    user_id: str,
    package_id: str,
    method_name: str,
    *,
    idempotency_key: str | None = None,
    email: str | None = None,
    gift: bool = False,
    promo_code: str | None = None,
) -> CreatedIntent:
    """Create a payment intent for a catalogue package, priced on the server only.

    With an idempotency key the same user and key always come back to the same
    intent; reusing a key for another package or method raises IdempotencyKeyReused
    (an IdempotencyConflict), a key still in use by its first request
    RequestInProgress, and a malformed key InvalidIdempotencyKey. Their messages
    say "idempotency key"; the entrypoint names the key as its clients know it.

    With ``gift`` the purchase credits no one when paid: its code (see
    ``services.gifts``) credits whoever redeems it.

    With ``promo_code`` the intent charges the discounted price, after the checkout
    took a hold on one use of the code (InvalidPromoCode when the code refuses it);
    the hold is released if the intent cannot be created.

    It is ``prepare_payment_intent`` then ``record_payment_intent``; an event loop
    runs the first on a thread and awaits ``record_payment_intent_awaiting``.
    """
    prepared = prepare_payment_intent(
        deps,
        user_id,
        package_id,
        method_name,
        idempotency_key=idempotency_key,
        email=email,
        gift=gift,
        promo_code=promo_code,
    )
    return record_payment_intent(deps, prepared)


def prepare_payment_intent(
    deps: BuyingDependencies,
    user_id: str,
    package_id: str,
    method_name: str,
    *,
    idempotency_key: str | None = None,
    email: str | None = None,
    gift: bool = False,
    promo_code: str | None = None,
) -> PreparedIntent:
    """``create_payment_intent`` up to the provider's answer: checks, key, promo hold, intent.

    Blocks on the provider (and on the key's reservation). The pending purchase is
    not written yet: the caller records it (``record_payment_intent`` or
    ``record_payment_intent_awaiting``) before answering. If that never happens
    (the process dies), the key's reservation goes stale and the same key takes
    the request over, to the same intent (the purchase id is derived from it).
    """
    package = deps.catalogue.get(package_id)
    method = require_payment_method(method_name, deps.catalogue.currency, deps.payment_methods)
    if gift and deps.gifts is None:
        raise UserError("gifts cannot be bought on this server", code="gifts_unavailable")
    if promo_code is not None:
        promo_code = require_promo_code(promo_code)
        if deps.promos is None:
            raise refuse(PromoRejection.UNKNOWN, "there is no such promo code")
    if idempotency_key is None:
        purchase_id = deps.ids.new_id()
        created, purchase = _create(
            deps, purchase_id, user_id, package, method, email, gift, promo_code
        )
        return PreparedIntent(created, user_id, purchase)
    if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise InvalidIdempotencyKey(MAX_IDEMPOTENCY_KEY)
    fingerprint = (
        f"{package.id}/{method.value}"
        + ("/gift" if gift else "")
        + (f"/promo:{promo_code}" if promo_code else "")
    )
    now = deps.clock.now()
    existing = deps.keys.reserve(user_id, idempotency_key, fingerprint, now)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused(existing.fingerprint)
        if existing.payment_intent_id is not None:
            snapshot = deps.gateway.retrieve_payment_intent(existing.payment_intent_id)
            return PreparedIntent(_created_before(deps, snapshot, package.price), user_id)
        if now - existing.reserved_at < STALE_RESERVATION:
            raise RequestInProgress()
    purchase_id = _purchase_id(user_id, idempotency_key)
    try:
        created, purchase = _create(
            deps, purchase_id, user_id, package, method, email, gift, promo_code
        )
    except BaseException:
        deps.keys.release(user_id, idempotency_key)
        raise
    return PreparedIntent(created, user_id, purchase, idempotency_key)


def record_payment_intent(deps: BuyingDependencies, prepared: PreparedIntent) -> CreatedIntent:
    """Record a prepared intent's pending purchase, then complete its key; blocks on the store.

    A write that fails releases the key (a retry with it comes back to the same
    intent) and raises the store's error.
    """
    if prepared.purchase is not None:
        try:
            deps.store.add_purchase(prepared.purchase)
        except BaseException:
            if prepared.key is not None:
                deps.keys.release(prepared.user_id, prepared.key)
            raise
        if prepared.key is not None:
            deps.keys.complete(prepared.user_id, prepared.key, prepared.created.snapshot.id)
    return prepared.created


async def record_payment_intent_awaiting(
    deps: BuyingDependencies, store: AwaitableTransactions, prepared: PreparedIntent
) -> CreatedIntent:
    """``record_payment_intent`` for an event loop, on a store that transacts awaitably.

    ``store`` is ``deps.store`` seen as ``AwaitableTransactions``: the purchase is
    written in one of its transactions and this returns once that is durable, with
    no thread parked on it. The key is completed (or, after a failed write,
    released) awaitably too when ``deps.keys`` can, otherwise on a worker thread.
    """
    purchase = prepared.purchase
    if purchase is None:
        return prepared.created

    def add(tx: BalanceRepository) -> Purchase:
        return tx.add_purchase(purchase)

    try:
        await store.atomically(add)
    except BaseException:
        if prepared.key is not None:
            await _release_key(deps.keys, prepared.user_id, prepared.key)
        raise
    if prepared.key is not None:
        keys = deps.keys
        if isinstance(keys, AwaitableCheckoutKeys):
            await keys.complete_awaiting(
                prepared.user_id, prepared.key, prepared.created.snapshot.id
            )
        else:
            await asyncio.to_thread(
                keys.complete, prepared.user_id, prepared.key, prepared.created.snapshot.id
            )
    return prepared.created


async def _release_key(keys: CheckoutKeys, user_id: str, key: str) -> None:
    if isinstance(keys, AwaitableCheckoutKeys):
        await keys.release_awaiting(user_id, key)
    else:
        await asyncio.to_thread(keys.release, user_id, key)


def _purchase_id(user_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).hexdigest()
    return f"k{digest[:32]}"


def _created_before(
    deps: BuyingDependencies, snapshot: IntentSnapshot, price: Money
) -> CreatedIntent:
    """An intent an earlier request with the same key created, at the price it was given."""
    purchase = deps.store.get_purchase(snapshot.id)
    if purchase is None or purchase.price is None or purchase.price == price:
        return CreatedIntent(snapshot, price)
    return CreatedIntent(snapshot, purchase.price, price - purchase.price)


def _create(
    deps: BuyingDependencies,
    purchase_id: str,
    user_id: str,
    package: TokenPackage,
    method: PaymentMethod,
    email: str | None,
    gift: bool = False,
    promo_code: str | None = None,
) -> tuple[CreatedIntent, Purchase]:
    """The provider's intent and the pending purchase to record for it (not written here)."""
    discount = 0
    if promo_code is not None:
        assert deps.promos is not None
        desk = PromoDesk(deps.promos, deps.catalogue, deps.clock)
        priced, _use = hold_promo(desk, promo_code, user_id, purchase_id, package.id)
        discount = priced.discount.amount
    request = IntentRequest(
        purchase_id,
        user_id,
        package,
        method,
        receipt_email=email,
        gift=gift,
        promo_code=promo_code,
        discount=discount,
    )
    try:
        snapshot = deps.gateway.create_payment_intent(request)
    except BaseException:
        if promo_code is not None:
            assert deps.promos is not None
            deps.promos.release(purchase_id)
        raise
    if promo_code is not None:
        assert deps.promos is not None
        deps.promos.attach_intent(purchase_id, snapshot.id)
    now = deps.clock.now()
    if gift:
        assert deps.gifts is not None
        index_gift(deps.gifts, snapshot.id, user_id, package.tokens, now)  # before the purchase
    purchase = Purchase.pending(
        snapshot.id, user_id, package.id, package.tokens, request.amount, now, gift=gift
    )
    if promo_code is None:
        return CreatedIntent(snapshot, request.amount), purchase
    discounted = CreatedIntent(snapshot, request.amount, Money(discount, request.amount.currency))
    return discounted, purchase


def check_payment_intent(
    deps: CheckingDependencies, user_id: str, payment_intent_id: str
) -> IntentCheck:
    """Fetch the intent from the provider and apply it as the webhook would.

    Only the purchaser may look; anyone else is told it does not exist. A purchase
    that has settled is answered from the store (see ``recorded_check``).
    """
    store = deps.crediting.store
    purchase, recorded = _recorded(store, user_id, payment_intent_id)
    if recorded is not None:
        return recorded
    snapshot = deps.gateway.retrieve_payment_intent(payment_intent_id)
    event = snapshot.event
    if purchase is None and (event is None or getattr(event, "user_id", None) != user_id):
        raise NotFound(f"no payment intent {payment_intent_id!r}")
    if event is not None:
        applied = apply_payment_event(deps.crediting, event)
        purchase = applied.purchase or purchase
    status = PurchaseStatus.PENDING if purchase is None else purchase.status
    return IntentCheck(status, store.balance(user_id))


def recorded_check(
    store: BalanceRepository, user_id: str, payment_intent_id: str
) -> IntentCheck | None:
    """The return-page answer when the store alone can give it, without the provider.

    That is when the user's purchase has settled: it succeeded (refunds and
    disputes arrive as events of their own, never through the intent), it awaits
    an operator's review, or its intent was canceled. A failed attempt has not
    settled: the customer may still pay the same intent. None when only the
    provider can tell; ``NotFound`` for another user's purchase.
    """
    return _recorded(store, user_id, payment_intent_id)[1]


def _recorded(
    store: BalanceRepository, user_id: str, payment_intent_id: str
) -> tuple[Purchase | None, IntentCheck | None]:
    purchase = store.get_purchase(payment_intent_id)
    if purchase is None:
        return None, None
    if purchase.user_id != user_id:
        raise NotFound(f"no payment intent {payment_intent_id!r}")
    settled = (
        purchase.succeeded
        or purchase.review_reason is not None
        or purchase.attempt is AttemptOutcome.CANCELED
    )
    if not settled:
        return purchase, None
    return purchase, IntentCheck(purchase.status, store.balance(user_id))


def purchases_of(store: BalanceRepository, user_id: str, limit: int = 100) -> Iterable[Purchase]:
    """The user's own purchases, newest first."""
    return store.purchases(user_id, limit)
