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


@attrs.frozen
class ChargeRefunded:
    """The intent's charge has now been refunded by ``amount_refunded`` in total."""

    event_id: str
    payment_intent_id: str
    amount_refunded: Money
    occurred_at: datetime


class DisputeState(enum.StrEnum):
    """Where a dispute stands: open holds tokens back, won releases them, lost keeps them."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


@attrs.frozen
class DisputeChanged:
    """A dispute over the intent's charge was opened or closed."""

    event_id: str
    payment_intent_id: str
    dispute_id: str
    amount: Money
    state: DisputeState
    occurred_at: datetime


PaymentEvent = PaymentSucceeded | PaymentAttempted | ChargeRefunded | DisputeChanged
