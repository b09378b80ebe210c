"""The catalogue: packages and derived discounts."""

from __future__ import annotations

import pytest

from buytokens.domain.catalogue import (
    DEFAULT_CATALOGUE,
    Catalogue,
    TokenPackage,
)
from buytokens.domain.errors import InvalidCatalogue, UnknownPackage
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
