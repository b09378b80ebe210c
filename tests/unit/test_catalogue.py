"""The catalogue: packages, derived discounts, and the methods that can pay."""

from __future__ import annotations

import pytest

from buytokens.domain.catalogue import (
    DEFAULT_CATALOGUE,
    Catalogue,
    PaymentMethod,
    TokenPackage,
    offered_payment_methods,
    require_payment_method,
)
from buytokens.domain.errors import InvalidCatalogue, UnknownPackage, UnsupportedPaymentMethod
from buytokens.domain.money import Money


def test_default_catalogue_is_the_seeds_four_cny_packages() -> None:
    """Ids, tokens, prices, discounts, labels and the popular flag match the contract."""
    rows = [
        (
            p.id,
            p.label,
            p.tokens,
            p.price.amount,
            p.shown_original_price.amount,
            p.discount_percent,
            p.popular,
        )
        for p in DEFAULT_CATALOGUE
    ]
    assert rows == [
        ("package_100k", "Basic", 100_000, 1_000, 1_000, 0, False),
        ("package_500k", "Popular", 500_000, 3_500, 5_000, 30, True),
        ("package_1m", "Pro", 1_000_000, 5_500, 10_000, 45, False),
        ("package_10m", "Enterprise", 10_000_000, 28_000, 100_000, 72, False),
    ]
    assert DEFAULT_CATALOGUE.currency == "cny"


def test_unknown_package_is_refused() -> None:
    """Looking up an id that is not on sale raises UnknownPackage."""
    with pytest.raises(UnknownPackage):
        DEFAULT_CATALOGUE.get("package_free")
    assert DEFAULT_CATALOGUE.find("package_free") is None


def _package(
    pid: str = "p",
    tokens: int = 10,
    amount: int = 100,
    original: int | None = None,
    currency: str = "cny",
) -> TokenPackage:
    return TokenPackage(
        pid,
        "Label",
        tokens,
        Money(amount, currency),
        None if original is None else Money(original, currency),
    )


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: _package(tokens=0), "packages.p.tokens"),
        (lambda: _package(tokens=-5), "packages.p.tokens"),
        (lambda: _package(amount=0), "packages.p.amount"),
        (lambda: _package(original=99), "packages.p.original_amount"),
        (lambda: Catalogue([_package(), _package()]), "packages.p"),
        (lambda: Catalogue([_package("a"), _package("b", currency="usd")]), "packages.b.currency"),
        (lambda: Catalogue([]), "packages"),
        (lambda: _package(pid="bad id!"), "packages.id ('bad id!')"),
    ],
)
def test_a_broken_catalogue_names_the_field(build: object, field: str) -> None:
    """Each invariant violation is refused with the offending field named."""
    with pytest.raises(InvalidCatalogue) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field


def test_cny_offers_card_alipay_and_wechat_but_not_crypto() -> None:
    """Stablecoin payments are USD-only, so a CNY catalogue never offers them."""
    assert offered_payment_methods("cny") == (
        PaymentMethod.CARD,
        PaymentMethod.ALIPAY,
        PaymentMethod.WECHAT_PAY,
    )
    with pytest.raises(UnsupportedPaymentMethod):
        require_payment_method("crypto", "cny")


def test_usd_offers_crypto() -> None:
    """A USD catalogue offers every default method including crypto."""
    assert PaymentMethod.CRYPTO in offered_payment_methods("usd")
    assert require_payment_method("crypto", "usd") is PaymentMethod.CRYPTO


def test_configuration_narrows_the_methods() -> None:
    """Only enabled methods are offered, in the configured order."""
    enabled = (PaymentMethod.WECHAT_PAY, PaymentMethod.CARD)
    assert offered_payment_methods("cny", enabled) == enabled
    with pytest.raises(UnsupportedPaymentMethod, match="choose one of: wechat_pay, card"):
        require_payment_method("alipay", "cny", enabled)


@pytest.mark.parametrize("name", ["bitcoin", "", "CARD", "sepa_debit"])
def test_unknown_method_names_are_refused(name: str) -> None:
    """Anything but an offered method's exact name is unsupported."""
    with pytest.raises(UnsupportedPaymentMethod):
        require_payment_method(name, "cny")
