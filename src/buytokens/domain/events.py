"""Payment events as the crediting rules see them, free of any provider's wire format.

Each event says what happened to one payment intent. Refund events carry the
*cumulative* refunded amount, so duplicates and reorderings converge.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from buytokens.domain.money import Money
from buytokens.domain.users import canonical_optional_user_id


@attrs.frozen
class PaymentSucceeded:
    """The intent's payment completed; metadata says whom to credit with what."""

    event_id: str
    payment_intent_id: str
    amount: Money
    user_id: str | None = attrs.field(converter=canonical_optional_user_id)
    package_id: str | None
    occurred_at: datetime
    gift: bool = False
    """The metadata says the purchase is a gift: it credits no one until redeemed."""
    purchase_id: str | None = None
    """Our checkout's id (metadata ``purchaseId``), which keys its promo code use."""
    promo_code: str | None = None
    """The promo code the checkout applied (metadata ``promoCode``), if any."""
    discount_amount: int | None = None
    """What the code took off the package's price, in minor units (``discountAmount``);
    None when absent or not a whole number. Only meaningful with ``promo_code``."""


class AttemptOutcome(enum.StrEnum):
    """Non-final states a payment attempt reports before (or instead of) success."""

    PROCESSING = "processing"
    FAILED = "failed"
    CANCELED = "canceled"


@attrs.frozen
class PaymentAttempted:
    """A payment attempt is processing, failed or was canceled."""

    event_id: str
    payment_intent_id: str
    outcome: AttemptOutcome
    occurred_at: datetime
    failure_message: str | None = None
    purchase_id: str | None = None  # metadata ``purchaseId``
    promo_code: str | None = None  # metadata ``promoCode``: a failure or cancel releases its use


@attrs.frozen
class ChargeRefunded:
    """The intent's charge has now been refunded by ``amount_refunded`` in total."""

    event_id: str
    payment_intent_id: str
    amount_refunded: Money
    occurred_at: datetime


class DisputeState(enum.StrEnum):
    """Where a dispute stands, as far as the money goes.

    Only a chargeback takes the money (``OPEN``); an inquiry moves none. The
    money comes back when the funds are reinstated or the dispute is won, and
    stays gone when it is lost. A closure (``WON``, ``LOST``, ``NO_CHARGEBACK``)
    is final: nothing that arrives later, in any order, reopens it.
    """

    INQUIRY = "inquiry"  # an inquiry (warning_*): no money moved, nothing held
    OPEN = "open"  # a chargeback: the disputed amount was withdrawn, its tokens are held
    REINSTATED = "reinstated"  # the withdrawn money came back before the dispute closed
    WON = "won"  # closed for the merchant: the money is back
    LOST = "lost"  # closed for the cardholder: the money stays withdrawn, the hold stays
    NO_CHARGEBACK = "no_chargeback"  # closed as an inquiry, prevented, or settled by a refund

    @property
    def closed(self) -> bool:
        """Whether the dispute is over."""
        return self in _CLOSED

    @property
    def holds_money(self) -> bool:
        """Whether the disputed amount is withdrawn from the merchant in this state."""
        return self in _WITHDRAWN

    def after(self, news: DisputeState) -> DisputeState:
        """The state once ``news`` about the same dispute is known too.

        A closure is final; before it, the money only moves forward (inquiry,
        withdrawn, reinstated), so news that arrives late or twice changes nothing.
        """
        if self.closed:
            return self
        if news.closed:
            return news
        return max(self, news, key=_MONEY_ORDER.index)


_CLOSED = frozenset({DisputeState.WON, DisputeState.LOST, DisputeState.NO_CHARGEBACK})
_WITHDRAWN = frozenset({DisputeState.OPEN, DisputeState.LOST})
_MONEY_ORDER = (DisputeState.INQUIRY, DisputeState.OPEN, DisputeState.REINSTATED)


@attrs.frozen
class DisputeChanged:
    """News about a dispute over the intent's charge: where it stands now."""

    event_id: str
    payment_intent_id: str
    dispute_id: str
    amount: Money
    state: DisputeState
    occurred_at: datetime


PaymentEvent = PaymentSucceeded | PaymentAttempted | ChargeRefunded | DisputeChanged
