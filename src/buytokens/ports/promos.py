"""The store of promo codes and of their uses (holds, paid uses) under the codes' limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from buytokens.domain.promo_uses import PromoUse
from buytokens.domain.promotions import PromoCode


class PromoCodes(Protocol):
    """Keeps ``PromoCode`` definitions by code and one ``PromoUse`` per checkout id.

    The store's part in keeping limits (docs/CODES.md, "Promo code uses") is two
    unique keys among uses that are not released, ``(code, ticket)`` when the
    ticket is not None and ``(code, user_id, user_ticket)``, and single-use
    conditional writes. Deciding which tickets to take is ``domain.promo_uses``.

    Every method raises ``StoreUnavailable`` when the store cannot be reached or
    cannot confirm a durable write.
    """

    def create(self, promo: PromoCode) -> bool:
        """Store a new code; False (nothing written) when the code already exists."""
        ...

    def get(self, code: str) -> PromoCode | None:
        """The code in normal form, or None."""
        ...

    def codes(self) -> Sequence[PromoCode]:
        """Every code, newest first."""
        ...

    def disable(self, code: str) -> bool:
        """Refuse the code from now on; False when there is no such code."""
        ...

    def live_uses(self, code: str) -> Sequence[PromoUse]:
        """The code's uses that are not released (held, expired or not, and paid)."""
        ...

    def find_use(self, checkout_id: str) -> PromoUse | None:
        """The use of this checkout, in any state, or None."""
        ...

    def write_use(self, use: PromoUse, previous: PromoUse | None) -> bool:
        """Store ``use`` in place of ``previous`` (None: the checkout has no use yet).

        False, writing nothing, when the stored use is not ``previous`` or when
        ``use`` would share a ticket with another live use of the code: someone
        else was first, read again and decide again.
        """
        ...

    def retire(self, stale: PromoUse, now: datetime, *, intent_canceled: bool = False) -> bool:
        """Release ``stale`` if it is still stored as it is, held, and expired at ``now``.

        Unless ``intent_canceled``, the released use keeps ``cancel_pending`` set
        when it has a payment intent, in the same write: the sweeper cancels that
        intent later (``pending_cancels``).
        """
        ...

    def pending_cancels(self) -> Sequence[PromoUse]:
        """Every released use whose intent is still to be canceled (``cancel_pending``)."""
        ...

    def release(self, checkout_id: str) -> PromoUse | None:
        """Release the checkout's use if it is held; the released use, or None if nothing
        changed (no use, already released, or paid: a failure never undoes a payment)."""
        ...

    def attach_intent(self, checkout_id: str, payment_intent_id: str) -> None:
        """Note the payment intent of the checkout's held use; a no-op otherwise."""
        ...
