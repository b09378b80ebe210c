"""Stand-ins for tests of code that uses buytokens: part of the public API.

Open ``BuyTokens("memory://", gateway=InMemoryPaymentGateway(), clock=FixedClock())``
and drive payments with the gateway's controls (``succeed``, ``fail``, ``refund``,
``open_dispute``...), which return Stripe-shaped events to feed back in through
``BuyTokens.apply_stripe_event`` or, signed, through ``BuyTokens.handle_webhook``.
"""

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.memory_gateway import (
    DECLINED_CARDS,
    SUCCEEDING_CARD,
    InMemoryPaymentGateway,
)

__all__ = ["DECLINED_CARDS", "SUCCEEDING_CARD", "FixedClock", "InMemoryPaymentGateway"]
