"""Gift codes: the code of a gift purchase, its index, and showing it to the buyer.

A gift's code is derived, never stored: ``RedemptionCode.for_gift(secret,
intent id)``. What a store keeps is the index record (the code's digest → the
payment intent), written before the purchase it indexes (see docs/CODES.md).
Redeeming a gift is a transition of its purchase (``services.codes``).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from buytokens.domain.codes import CodeKind, CodeRecord, CodeSecret, RedemptionCode
from buytokens.domain.purchases import Purchase
from buytokens.ports.codes import RedemptionCodes


@attrs.frozen
class GiftCodes:
    """What gift codes need: the secret they are derived from and the index they live in."""

    secret: CodeSecret
    codes: RedemptionCodes


@attrs.frozen
class GiftCodeView:
    """A paid gift's code as its buyer sees it, and whether someone redeemed it."""

    code: RedemptionCode | None  # None when the secret changed since the purchase
    redeemed: bool


def index_gift(
    gifts: GiftCodes, payment_intent_id: str, buyer_id: str, tokens: int, at: datetime
) -> RedemptionCode:
    """Write the index record of the intent's gift code (a no-op when it is there already)."""
    code = RedemptionCode.for_gift(gifts.secret, payment_intent_id)
    gifts.codes.index_gift(CodeRecord.gift(code, payment_intent_id, buyer_id, tokens, at))
    return code


def gift_code_of(gifts: GiftCodes, purchase: Purchase) -> GiftCodeView | None:
    """The code of a paid gift for its buyer's own list; None for anything else.

    The code is derived again and shown only if the index holds its digest for
    this very intent: after a secret rotation a wrong code is never shown.
    """
    if not purchase.gift or not purchase.succeeded or purchase.review_reason is not None:
        return None
    code = RedemptionCode.for_gift(gifts.secret, purchase.payment_intent_id)
    record = gifts.codes.find(code.digest)
    known = (
        record is not None
        and record.kind is CodeKind.GIFT
        and record.payment_intent_id == purchase.payment_intent_id
    )
    return GiftCodeView(code if known else None, purchase.redeemed_by is not None)
