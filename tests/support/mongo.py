"""Shared pieces of the MongoDB adapter's tests."""

from __future__ import annotations

from datetime import UTC, datetime

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.mongo import MongoBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import Disposition
from buytokens.domain.events import PaymentEvent, PaymentSucceeded
from buytokens.domain.money import Money
from buytokens.services.crediting import apply_payment_event

USER = "0123456789abcdef01234567"  # a LibreChat user id: stored as an ObjectId
OCCURRED = datetime(2026, 1, 1, tzinfo=UTC)


def succeeded(pi: str, user: str = USER) -> PaymentSucceeded:
    """A genuine success for package_100k."""
    return PaymentSucceeded(f"evt_{pi}", pi, Money(1_000, "cny"), user, "package_100k", OCCURRED)


def deliver(event: PaymentEvent, store: MongoBalanceRepository, clock: FixedClock) -> Disposition:
    """Apply one delivery through the use case and say what it came to."""
    return apply_payment_event(event, store, DEFAULT_CATALOGUE, clock).disposition
