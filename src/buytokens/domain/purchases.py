"""Purchases: what is known about one payment intent, and the status that follows from it.

A purchase accumulates *facts* (succeeded, cumulative refund, disputes, latest
attempt) that merge the same way whatever order events arrive in; its status is
derived from those facts, never stored separately.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from buytokens.domain.events import AttemptOutcome, DisputeState
from buytokens.domain.money import Money
from buytokens.domain.users import canonical_optional_user_id


class PurchaseStatus(enum.StrEnum):
    """The lifecycle states a client sees."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    NEEDS_REVIEW = "needs_review"


_SETTLED_FOR_US = frozenset({DisputeState.WON, DisputeState.NO_CHARGEBACK})


@attrs.frozen
class DisputeRecord:
    """One dispute over the purchase's charge."""

    dispute_id: str
    amount: int
    state: DisputeState


@attrs.frozen
class Purchase:
    """Everything known about one payment intent, at one version.

    ``user_id`` and ``price`` are None only for an intent first heard of through a
    refund or dispute, before its success event has arrived.
    ``tokens_refunded`` and ``tokens_held`` are the take-back targets reached so
    far (the refunded share, and what disputes hold beyond it); what a balance
    could actually absorb is on the ledger entries, and only that is ever given
    back.
    """

    payment_intent_id: str
    user_id: str | None = attrs.field(converter=canonical_optional_user_id)
    package_id: str | None
    tokens: int
    price: Money | None
    created_at: datetime
    updated_at: datetime
    version: int = 0
    succeeded: bool = False
    attempt: AttemptOutcome | None = None
    attempt_at: datetime | None = None
    amount_refunded: int = 0
    disputes: tuple[DisputeRecord, ...] = ()
    review_reason: str | None = None
    tokens_credited: int = 0
    tokens_refunded: int = 0
    tokens_held: int = 0
    gift: bool = False
    redeemed_by: str | None = attrs.field(default=None, converter=canonical_optional_user_id)
    redeemed_at: datetime | None = None
    void_reason: str | None = None
    """Why a gift can no longer be redeemed: its money went back before redemption."""

    def __attrs_post_init__(self) -> None:
        if (self.redeemed_by is None) != (self.redeemed_at is None):
            raise ValueError("redeemed_by and redeemed_at go together")
        if not self.gift and (self.redeemed_by is not None or self.void_reason is not None):
            raise ValueError("only a gift is redeemed or void")

    @classmethod
    def pending(
        cls,
        payment_intent_id: str,
        user_id: str,
        package_id: str,
        tokens: int,
        price: Money,
        at: datetime,
        *,
        gift: bool = False,
    ) -> Purchase:
        """A purchase whose intent was just created and awaits payment."""
        return cls(payment_intent_id, user_id, package_id, tokens, price, at, at, gift=gift)

    @property
    def beneficiary(self) -> str | None:
        """Whose balance the purchase's tokens are on: the buyer's, or a gift's redeemer's."""
        return self.redeemed_by if self.gift else self.user_id

    @property
    def gift_redeemable(self) -> bool:
        """A paid gift that nobody redeemed and whose money is all still here."""
        return (
            self.gift
            and self.succeeded
            and self.review_reason is None
            and self.redeemed_by is None
            and self.void_reason is None
        )

    @property
    def status(self) -> PurchaseStatus:
        """The client-facing status derived from the facts."""
        if self.review_reason is not None:
            return PurchaseStatus.NEEDS_REVIEW
        if self.succeeded:
            if any(d.state not in _SETTLED_FOR_US for d in self.disputes):
                return PurchaseStatus.DISPUTED
            if self.price is not None and self.amount_refunded >= self.price.amount:
                return PurchaseStatus.REFUNDED
            if self.amount_refunded > 0:
                return PurchaseStatus.PARTIALLY_REFUNDED
            return PurchaseStatus.SUCCEEDED
        if self.attempt is AttemptOutcome.PROCESSING:
            return PurchaseStatus.PROCESSING
        if self.attempt in (AttemptOutcome.FAILED, AttemptOutcome.CANCELED):
            return PurchaseStatus.FAILED
        return PurchaseStatus.PENDING

    @property
    def tokens_taken_back(self) -> int:
        """The take-back target reached so far, for refunds and disputes together."""
        return self.tokens_refunded + self.tokens_held

    def dispute(self, dispute_id: str) -> DisputeRecord | None:
        """The record of one dispute, if known."""
        for record in self.disputes:
            if record.dispute_id == dispute_id:
                return record
        return None
