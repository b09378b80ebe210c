"""Stand-ins for tests of code that uses buytokens (public API), and the tooling that is not
the product.

Open ``BuyTokens("memory://", gateway=InMemoryPaymentGateway(), clock=FixedClock())``
and drive payments with the gateway's controls (``succeed``, ``fail``, ``refund``,
``open_dispute``...), which return Stripe-shaped events to feed back in through
``BuyTokens.apply_stripe_event`` or, signed, through ``BuyTokens.handle_webhook``.

The submodules ``localstripe`` (runs localstripe in a child process) and ``demo``
(``buytokens demo``) need the ``demo`` extra: ``pip install 'buytokens[demo]'``.
Nothing on the production import path imports this package.
"""

from buytokens.adapters.memory import FixedClock
from buytokens.testing.stripe_twin import (
    DECLINED_CARDS,
    SUCCEEDING_CARD,
    InMemoryPaymentGateway,
)

__all__ = ["DECLINED_CARDS", "SUCCEEDING_CARD", "FixedClock", "InMemoryPaymentGateway"]
