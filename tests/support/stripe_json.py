"""Stripe-shaped events built by hand, for histories that a test writes out in full."""

from __future__ import annotations

import itertools
from typing import Any

StripeJson = dict[str, Any]

_ids = itertools.count(1)
T0_SECONDS = 1_780_000_000


def stripe_event(
    event_type: str, subject: StripeJson, *, event_id: str | None = None, created: int = 0
) -> StripeJson:
    """An event as Stripe delivers it: a fresh id unless given, ``subject`` as its object."""
    return {
        "id": event_id or f"evt_hand{next(_ids):08d}",
        "object": "event",
        "type": event_type,
        "created": T0_SECONDS + created,
        "livemode": False,
        "data": {"object": dict(subject)},
    }


def succeeded(pi: str, user: str, package_id: str, amount: int, currency: str) -> StripeJson:
    """``payment_intent.succeeded`` with the metadata the crediting rules read."""
    return stripe_event(
        "payment_intent.succeeded",
        {
            "id": pi,
            "object": "payment_intent",
            "amount": amount,
            "currency": currency,
            "status": "succeeded",
            "metadata": {"userId": user, "packageId": package_id},
        },
        event_id=f"evt_ok_{pi}",
    )


def refunded(pi: str, amount: int, amount_refunded: int, currency: str) -> StripeJson:
    """``charge.refunded`` with the charge's cumulative ``amount_refunded``."""
    return stripe_event(
        "charge.refunded",
        {
            "id": f"ch_{pi}",
            "object": "charge",
            "amount": amount,
            "amount_refunded": amount_refunded,
            "currency": currency,
            "payment_intent": pi,
            "refunded": amount_refunded >= amount,
        },
        event_id=f"evt_rf_{pi}_{amount_refunded}",
    )


def dispute(
    event_type: str, pi: str, dispute_id: str, amount: int, currency: str, status: str
) -> StripeJson:
    """A ``charge.dispute.*`` event whose dispute object has ``status``."""
    return stripe_event(
        event_type,
        {
            "id": dispute_id,
            "object": "dispute",
            "amount": amount,
            "currency": currency,
            "charge": f"ch_{pi}",
            "payment_intent": pi,
            "status": status,
        },
        event_id=f"evt_{dispute_id}_{event_type.rsplit('.', 1)[-1]}_{status}",
    )
