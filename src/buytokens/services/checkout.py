"""Buying: creating payment intents, checking them from the return page, taking webhooks."""

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
from buytokens.domain.checkout import Delivery, IntentRequest, IntentSnapshot, ReceivedEvent
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import IdempotencyConflict, NotFound, RetryableError, UserError
from buytokens.domain.events import AttemptOutcome
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys, EventJournal
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.payments import PaymentGateway
from buytokens.services.crediting import Applied, apply_payment_event

# A reservation whose request never finished (the process died) may be taken over
# after this long; the derived purchase id keeps the provider call idempotent.
STALE_RESERVATION = timedelta(seconds=60)
MAX_IDEMPOTENCY_KEY = 255


@attrs.frozen
class Shop:
    """Everything the buying use cases need, bundled once at start-up."""

    catalogue: Catalogue
    store: BalanceRepository
    gateway: PaymentGateway
    keys: CheckoutKeys
    journal: EventJournal
    clock: Clock
    ids: IdSource
    payment_methods: tuple[PaymentMethod, ...] = DEFAULT_PAYMENT_METHODS


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
    shop: Shop,
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
    package = shop.catalogue.get(package_id)
    method = require_payment_method(method_name, shop.catalogue.currency, shop.payment_methods)
    if idempotency_key is None:
        return _create(shop, shop.ids.new_id(), user_id, package, method, email)
    if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise UserError(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters",
            code="invalid_idempotency_key",
        )
    fingerprint = f"{package.id}/{method.value}"
    now = shop.clock.now()
    existing = shop.keys.reserve(user_id, idempotency_key, fingerprint, now)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for a different request "
                f"({existing.fingerprint})"
            )
        if existing.payment_intent_id is not None:
            snapshot = shop.gateway.retrieve_payment_intent(existing.payment_intent_id)
            return CreatedIntent(snapshot, package.price)
        if now - existing.reserved_at < STALE_RESERVATION:
            raise RequestInProgress("the first request with this Idempotency-Key is still running")
    purchase_id = _purchase_id(user_id, idempotency_key)
    try:
        created = _create(shop, purchase_id, user_id, package, method, email)
    except BaseException:
        shop.keys.release(user_id, idempotency_key)
        raise
    shop.keys.complete(user_id, idempotency_key, created.snapshot.id)
    return created


def _purchase_id(user_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).hexdigest()
    return f"k{digest[:32]}"


def _create(
    shop: Shop,
    purchase_id: str,
    user_id: str,
    package: TokenPackage,
    method: PaymentMethod,
    email: str | None,
) -> CreatedIntent:
    snapshot = shop.gateway.create_payment_intent(
        IntentRequest(purchase_id, user_id, package, method, receipt_email=email)
    )
    shop.store.add_purchase(
        Purchase.pending(
            snapshot.id, user_id, package.id, package.tokens, package.price, shop.clock.now()
        )
    )
    return CreatedIntent(snapshot, package.price)


def check_payment_intent(shop: Shop, user_id: str, payment_intent_id: str) -> IntentCheck:
    """Fetch the intent from the provider and apply it as the webhook would.

    Only the purchaser may look; anyone else is told it does not exist. A purchase
    that has settled is answered from the store (see ``recorded_check``).
    """
    purchase, recorded = _recorded(shop, user_id, payment_intent_id)
    if recorded is not None:
        return recorded
    snapshot = shop.gateway.retrieve_payment_intent(payment_intent_id)
    event = snapshot.event
    if purchase is None and (event is None or getattr(event, "user_id", None) != user_id):
        raise NotFound(f"no payment intent {payment_intent_id!r}")
    if event is not None:
        applied = apply_payment_event(event, shop.store, shop.catalogue, shop.clock)
        purchase = applied.purchase or purchase
    status = PurchaseStatus.PENDING if purchase is None else purchase.status
    return IntentCheck(status, shop.store.balance(user_id))


def recorded_check(shop: Shop, user_id: str, payment_intent_id: str) -> IntentCheck | None:
    """The return-page answer when the store alone can give it, without the provider.

    That is when the user's purchase has settled: it succeeded (refunds and
    disputes arrive as events of their own, never through the intent), it awaits
    an operator's review, or its intent was canceled. A failed attempt has not
    settled: the customer may still pay the same intent. None when only the
    provider can tell; ``NotFound`` for another user's purchase.
    """
    return _recorded(shop, user_id, payment_intent_id)[1]


def _recorded(
    shop: Shop, user_id: str, payment_intent_id: str
) -> tuple[Purchase | None, IntentCheck | None]:
    purchase = shop.store.get_purchase(payment_intent_id)
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
    return purchase, IntentCheck(purchase.status, shop.store.balance(user_id))


def receive_webhook(shop: Shop, payload: bytes, signature_header: str | None) -> Applied:
    """Verify, apply and journal one webhook delivery.

    Raises InvalidWebhook for anything not genuinely from the provider; a genuine
    event we do not act on comes back IGNORED. Returns only once the outcome is
    durably stored.
    """
    return apply_received_event(shop, shop.gateway.parse_webhook(payload, signature_header))


def apply_received_event(shop: Shop, received: ReceivedEvent) -> Applied:
    """Apply a verified provider event through the idempotent path and journal its delivery.

    The delivery is journalled by the store write of its outcome (see
    ``apply_payment_event``); an event we do not act on is journalled alone.
    """
    if received.payment_event is None:
        ignored = Delivery.of(received, Disposition.IGNORED.value, shop.clock.now())
        shop.store.record_delivery(ignored)
        return Applied(Disposition.IGNORED, None, reason=f"{received.type} is not acted on")
    return apply_payment_event(
        received.payment_event, shop.store, shop.catalogue, shop.clock, received=received
    )


def offered_methods(shop: Shop) -> tuple[PaymentMethod, ...]:
    """The payment methods the page may offer for this catalogue."""
    return offered_payment_methods(shop.catalogue.currency, shop.payment_methods)


def purchases_of(shop: Shop, user_id: str, limit: int = 100) -> Iterable[Purchase]:
    """The user's own purchases, newest first."""
    return shop.store.purchases(user_id, limit)
