"""Which payment methods Stripe can take in which currency, and choosing one of those offered."""

from __future__ import annotations

import pytest

from buytokens.adapters.stripe_methods import offered_payment_methods
from buytokens.domain.catalogue import PaymentMethod, require_payment_method
from buytokens.domain.errors import UnsupportedPaymentMethod


def test_cny_offers_card_alipay_and_wechat_but_not_crypto() -> None:
    """Stablecoin payments are USD-only, so a CNY catalogue never offers them."""
    offered = offered_payment_methods("cny")
    assert offered == (PaymentMethod.CARD, PaymentMethod.ALIPAY, PaymentMethod.WECHAT_PAY)
    with pytest.raises(UnsupportedPaymentMethod):
        require_payment_method("crypto", "cny", offered)


def test_usd_offers_crypto() -> None:
    """A USD catalogue offers every default method including crypto."""
    offered = offered_payment_methods("usd")
    assert PaymentMethod.CRYPTO in offered
    assert require_payment_method("crypto", "usd", offered) is PaymentMethod.CRYPTO


def test_configuration_narrows_the_methods() -> None:
    """Only enabled methods are offered, in the configured order."""
    enabled = (PaymentMethod.WECHAT_PAY, PaymentMethod.CARD)
    offered = offered_payment_methods("cny", enabled)
    assert offered == enabled
    with pytest.raises(UnsupportedPaymentMethod, match="choose one of: wechat_pay, card"):
        require_payment_method("alipay", "cny", offered)


def test_a_refusal_names_the_currency_and_what_is_offered() -> None:
    """The message a buyer sees is the same whoever decided what is offered."""
    with pytest.raises(UnsupportedPaymentMethod) as refused:
        require_payment_method("crypto", "cny", offered_payment_methods("cny"))
    assert refused.value.message == (
        "payment method 'crypto' is not offered for CNY; choose one of: card, alipay, wechat_pay"
    )


@pytest.mark.parametrize("name", ["bitcoin", "", "CARD", "sepa_debit"])
def test_unknown_method_names_are_refused(name: str) -> None:
    """Anything but an offered method's exact name is unsupported."""
    with pytest.raises(UnsupportedPaymentMethod):
        require_payment_method(name, "cny", offered_payment_methods("cny"))
