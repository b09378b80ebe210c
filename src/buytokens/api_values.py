"""The plain values ``BuyTokens`` takes and returns for buying and crediting.

Re-exported by ``buytokens``; this module itself is internal. The values of
promo, gift and redemption codes are in ``buytokens.api_codes``.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from buytokens.domain.crediting import Disposition
from buytokens.domain.ledger import LedgerEntry
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase, PurchaseStatus


def unset_if_blank(value: str | None) -> str | None:
    return None if value is None or not value.strip() else value


@attrs.frozen(repr=False)
class StripeSettings:
    """How to reach Stripe; the secrets never appear in a repr or a log.

    Without ``secret_key`` payments are refused with ``ConfigurationError`` while
    webhooks still verify; without ``webhook_secret`` every webhook is refused
    with ``InvalidWebhook`` (fail closed). ``api_base`` points at another Stripe
    (e.g. a localstripe); ``api_version`` pins Stripe's API version. Blank values
    count as unset, as they do in the environment.
    """

    secret_key: str | None = attrs.field(default=None, converter=unset_if_blank)
    webhook_secret: str | None = attrs.field(default=None, converter=unset_if_blank)
    api_base: str | None = attrs.field(default=None, converter=unset_if_blank)
    api_version: str | None = attrs.field(default=None, converter=unset_if_blank)

    def __repr__(self) -> str:
        shown = {
            "secret_key": "set" if self.secret_key else "unset",
            "webhook_secret": "set" if self.webhook_secret else "unset",
        }
        return f"StripeSettings({shown}, api_base={self.api_base!r})"


@attrs.frozen
class PaymentIntent:
    """A payment intent for the buyer's browser to confirm with Stripe.js.

    ``status`` is Stripe's own (``requires_payment_method``, ``succeeded``...);
    ``next_action`` is what the browser must do next for redirect and QR methods.
    With a promo code ``amount`` is the discounted price and ``discount`` what
    the code took off the package's price (None without a code).
    """

    id: str
    client_secret: str
    amount: Money
    status: str
    next_action: dict[str, object] | None = None
    discount: Money | None = None


@attrs.frozen
class EventOutcome:
    """What one Stripe event came to, once it is durably stored.

    ``status`` is the purchase's status after the event (None when the event
    concerns no purchase); ``entries`` are the balance changes this event made
    (empty for a duplicate, an ignored event or one flagged for review).
    """

    event_id: str
    event_type: str
    disposition: Disposition
    payment_intent_id: str | None
    status: PurchaseStatus | None
    entries: tuple[LedgerEntry, ...] = ()
    reason: str = ""


@attrs.frozen
class PaymentStatus:
    """Where a purchase stands after checking its intent, and the buyer's balance."""

    status: PurchaseStatus
    token_credits: int


@attrs.frozen
class PurchaseRecord:
    """One purchase as its buyer and an operator see it.

    ``user_id``, ``package_id`` and ``price`` are None only for an intent first
    heard of through a refund or dispute, before its payment event arrived.
    ``review_reason`` says why a purchase awaits an operator (status ``needs_review``).
    ``gift`` is True for a purchase bought as a gift (``BuyTokens.gift_code`` shows
    its code to the buyer once paid).
    """

    payment_intent_id: str
    user_id: str | None
    package_id: str | None
    tokens: int
    price: Money | None
    status: PurchaseStatus
    created_at: datetime
    updated_at: datetime
    review_reason: str | None = None
    gift: bool = False


@attrs.frozen
class History:
    """A user's purchases and ledger entries, each newest first."""

    purchases: tuple[PurchaseRecord, ...]
    ledger: tuple[LedgerEntry, ...]


def purchase_record(purchase: Purchase) -> PurchaseRecord:
    return PurchaseRecord(
        purchase.payment_intent_id,
        purchase.user_id,
        purchase.package_id,
        purchase.tokens,
        purchase.price,
        purchase.status,
        purchase.created_at,
        purchase.updated_at,
        purchase.review_reason,
        purchase.gift,
    )
