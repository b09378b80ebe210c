"""What we ask a payment provider for, and what it tells us back."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from buytokens.domain.catalogue import PaymentMethod, TokenPackage
from buytokens.domain.events import PaymentEvent
from buytokens.domain.money import Money


@attrs.frozen
class IntentRequest:
    """Ask for a payment intent that charges ``package``'s price to ``user_id``.

    ``purchase_id`` is our identity for the request; a provider must derive its
    idempotency key from it so that a retried request never charges twice.
    """

    purchase_id: str
    user_id: str
    package: TokenPackage
    method: PaymentMethod
    receipt_email: str | None = None
    return_url: str | None = None
    gift: bool = False  # the provider must say so in the intent's signed metadata
    promo_code: str | None = None  # metadata ``promoCode``; the price is then ``amount``
    discount: int = 0  # minor units the code takes off (metadata ``discountAmount``)

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.discount < self.package.price.amount:
            raise ValueError(f"a discount of {self.discount} does not fit the package's price")
        if (self.discount > 0) != (self.promo_code is not None):
            raise ValueError("a discount comes with its promo code, and only with one")

    @property
    def amount(self) -> Money:
        """What the intent charges: the package's price less the promo code's discount."""
        price = self.package.price
        return Money(price.amount - self.discount, price.currency)


@attrs.frozen
class IntentSnapshot:
    """A payment intent as the provider reports it now."""

    id: str
    client_secret: str
    status: str  # the provider's own status, e.g. "requires_payment_method", "succeeded"
    event: PaymentEvent | None  # the status as a payment event, None while nothing happened
    next_action: dict[str, object] | None = None  # what the page must do next (redirect, QR)


class CancelOutcome(enum.StrEnum):
    """What asking the provider to cancel a payment intent came to."""

    CANCELED = "canceled"  # canceled now, or it was already
    TOO_LATE = "too_late"  # it succeeded or is processing: the payment stands


@attrs.frozen
class ReceivedEvent:
    """A verified provider event: its identity, type and, when we act on it, its meaning."""

    event_id: str
    type: str
    created_at: datetime
    payment_event: PaymentEvent | None


@attrs.frozen
class Delivery:
    """One receipt of a provider event and what it came to: a record of the event journal."""

    event_id: str
    event_type: str
    payment_intent_id: str | None
    disposition: str
    received_at: datetime

    @classmethod
    def of(cls, event: ReceivedEvent, disposition: str, at: datetime) -> Delivery:
        """The delivery of ``event`` at ``at``, which came to ``disposition``."""
        payment = event.payment_event
        return cls(
            event.event_id,
            event.type,
            None if payment is None else payment.payment_intent_id,
            disposition,
            at,
        )
