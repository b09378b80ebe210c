"""What we ask a payment provider for, and what it tells us back."""

from __future__ import annotations

from datetime import datetime

import attrs

from buytokens.domain.catalogue import PaymentMethod, TokenPackage
from buytokens.domain.events import PaymentEvent


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


@attrs.frozen
class IntentSnapshot:
    """A payment intent as the provider reports it now."""

    id: str
    client_secret: str
    status: str  # the provider's own status, e.g. "requires_payment_method", "succeeded"
    event: PaymentEvent | None  # the status as a payment event, None while nothing happened
    next_action: dict[str, object] | None = None  # what the page must do next (redirect, QR)


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
