"""Buying: creating a payment intent, and the return page's check of it.

Calling style (see ``buytokens.services``): ``create_payment_intent(deps, ...)``
with a ``BuyingDependencies``; ``check_payment_intent(deps, ...)`` with a
``CheckingDependencies``; ``recorded_check`` and ``purchases_of`` with the store alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import timedelta

import attrs

from buytokens.domain.catalogue import (
    DEFAULT_PAYMENT_METHODS,
    Catalogue,
    PaymentMethod,
    TokenPackage,
    offered_payment_methods,
    require_payment_method,
)
from buytokens.domain.checkout import IntentRequest, IntentSnapshot
from buytokens.domain.errors import IdempotencyConflict, NotFound, RetryableError, UserError
from buytokens.domain.events import AttemptOutcome
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.payments import PaymentGateway
from buytokens.services.crediting import CreditingDependencies, apply_payment_event

# A reservation whose request never finished (the process died) may be taken over
# after this long; the derived purchase id keeps the provider call idempotent.
STALE_RESERVATION = timedelta(seconds=60)
MAX_IDEMPOTENCY_KEY = 255


@attrs.frozen
class BuyingDependencies:
    """What creating a payment intent needs.

    The catalogue prices it, ``payment_methods`` are the methods enabled, ``keys``
    remember clients' idempotency keys, and the store records the pending purchase.
    """

    catalogue: Catalogue
    store: BalanceRepository
    gateway: PaymentGateway
    keys: CheckoutKeys
    clock: Clock
    ids: IdSource
    payment_methods: tuple[PaymentMethod, ...] = DEFAULT_PAYMENT_METHODS


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


@attrs.frozen
class IntentCheck:
    """The return-page answer: where the purchase stands and the user's balance."""

    status: PurchaseStatus
    token_credits: int


class RequestInProgress(RetryableError):
    """The same idempotency key is being served by another request right now."""

    code = "request_in_progress"


def create_payment_intent(
    deps: BuyingDependencies,
    user_id: str,
    package_id: str,
    method_name: str,
    *,
    idempotency_key: str | None = None,
    email: str | None = None,
) -> CreatedIntent:
    """Create a payment intent for a catalogue package, priced on the server only.

    With an idempotency key the same user and key always come back to the same
    intent; reusing a key for another package or method raises IdempotencyConflict.
    """
    package = deps.catalogue.get(package_id)
    method = require_payment_method(method_name, deps.catalogue.currency, deps.payment_methods)
    if idempotency_key is None:
        return _create(deps, deps.ids.new_id(), user_id, package, method, email)
    if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise UserError(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters",
            code="invalid_idempotency_key",
        )
    fingerprint = f"{package.id}/{method.value}"
    now = deps.clock.now()
    existing = deps.keys.reserve(user_id, idempotency_key, fingerprint, now)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for a different request "
                f"({existing.fingerprint})"
            )
        if existing.payment_intent_id is not None:
            snapshot = deps.gateway.retrieve_payment_intent(existing.payment_intent_id)
            return CreatedIntent(snapshot, package.price)
        if now - existing.reserved_at < STALE_RESERVATION:
            raise RequestInProgress("the first request with this Idempotency-Key is still running")
    purchase_id = _purchase_id(user_id, idempotency_key)
    try:
        created = _create(deps, purchase_id, user_id, package, method, email)
    except BaseException:
        deps.keys.release(user_id, idempotency_key)
        raise
    deps.keys.complete(user_id, idempotency_key, created.snapshot.id)
    return created


def _purchase_id(user_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).hexdigest()
    return f"k{digest[:32]}"


def _create(
    deps: BuyingDependencies,
    purchase_id: str,
    user_id: str,
    package: TokenPackage,
    method: PaymentMethod,
    email: str | None,
) -> CreatedIntent:
    snapshot = deps.gateway.create_payment_intent(
        IntentRequest(purchase_id, user_id, package, method, receipt_email=email)
    )
    deps.store.add_purchase(
        Purchase.pending(
            snapshot.id, user_id, package.id, package.tokens, package.price, deps.clock.now()
        )
    )
    return CreatedIntent(snapshot, package.price)


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


def offered_methods(deps: BuyingDependencies) -> tuple[PaymentMethod, ...]:
    """The payment methods the page may offer for this catalogue."""
    return offered_payment_methods(deps.catalogue.currency, deps.payment_methods)


def purchases_of(store: BalanceRepository, user_id: str, limit: int = 100) -> Iterable[Purchase]:
    """The user's own purchases, newest first."""
    return store.purchases(user_id, limit)
