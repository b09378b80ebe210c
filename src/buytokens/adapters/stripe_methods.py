"""Which Stripe payment method types can pay in which presentment currency.

A fact about Stripe (its payment method docs), not about token packages: the
composition root asks it once which methods to offer for the catalogue's
currency, and the Stripe gateways check each intent against it.
"""

from __future__ import annotations

from collections.abc import Iterable

from buytokens.domain.catalogue import PaymentMethod

# Presentment currencies each method accepts; None: every currency.
_METHOD_CURRENCIES: dict[PaymentMethod, frozenset[str] | None] = {
    PaymentMethod.CARD: None,
    PaymentMethod.ALIPAY: frozenset(
        ["cny", "aud", "cad", "eur", "gbp", "hkd", "jpy", "myr", "nzd", "sgd", "usd"]
    ),
    PaymentMethod.WECHAT_PAY: frozenset(
        ["cny", "aud", "cad", "chf", "dkk", "eur", "gbp", "hkd", "jpy", "nok", "sek", "sgd", "usd"]
    ),
    PaymentMethod.CRYPTO: frozenset({"usd"}),
}

DEFAULT_PAYMENT_METHODS = (
    PaymentMethod.CARD,
    PaymentMethod.ALIPAY,
    PaymentMethod.WECHAT_PAY,
    PaymentMethod.CRYPTO,
)
"""The methods enabled unless configured otherwise, in the order the page shows them."""


def offered_payment_methods(
    currency: str, enabled: Iterable[PaymentMethod] = DEFAULT_PAYMENT_METHODS
) -> tuple[PaymentMethod, ...]:
    """The enabled methods that can pay in ``currency``, in the order given."""
    offered = []
    for method in enabled:
        currencies = _METHOD_CURRENCIES[method]
        if currencies is None or currency in currencies:
            offered.append(method)
    return tuple(offered)
