"""Money: integer minor units with an explicit currency."""

from __future__ import annotations

import pytest

from buytokens.domain.errors import InvalidMoney
from buytokens.domain.money import Money, currency_exponent


@pytest.mark.parametrize("amount", [10.0, "10", None, True])
def test_money_refuses_anything_but_an_integer_amount(amount: object) -> None:
    """Floats, strings and booleans are not minor units."""
    with pytest.raises(InvalidMoney):
        Money(amount, "cny")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["CNY", "yuan", "", "c1y", None])
def test_money_refuses_a_malformed_currency(currency: object) -> None:
    """The currency must be a lower-case three-letter ISO code."""
    with pytest.raises(InvalidMoney):
        Money(100, currency)  # type: ignore[arg-type]


def test_named_constructor_normalises_case() -> None:
    """Money.of accepts an upper-case code."""
    assert Money.of(3_500, "CNY") == Money(3_500, "cny")


def test_money_of_different_currencies_does_not_mix() -> None:
    """Adding or comparing across currencies is an error, not a silent conversion."""
    with pytest.raises(InvalidMoney):
        _ = Money(1, "cny") + Money(1, "usd")
    with pytest.raises(InvalidMoney):
        _ = Money(1, "cny") < Money(1, "usd")


def test_arithmetic_within_a_currency() -> None:
    """Sums and differences stay in the currency."""
    assert Money(3_500, "cny") + Money(1_500, "cny") == Money(5_000, "cny")
    assert Money(5_000, "cny") - Money(3_500, "cny") == Money(1_500, "cny")
    assert Money(1, "cny") <= Money(1, "cny") < Money(2, "cny")


@pytest.mark.parametrize(
    ("money", "shown"),
    [
        (Money(3_500, "cny"), "¥35.00"),
        (Money(100_000, "cny"), "¥1,000.00"),
        (Money(999, "usd"), "$9.99"),
        (Money(1_000, "jpy"), "¥1,000"),
        (Money(1_234, "kwd"), "1.234 KWD"),
        (Money(-5, "eur"), "-€0.05"),
    ],
)
def test_format_uses_the_currency_exponent_and_symbol(money: Money, shown: str) -> None:
    """Each currency shows its own number of decimals."""
    assert money.format() == shown


def test_currency_exponents_follow_stripe() -> None:
    """Zero- and three-decimal currencies are recognised."""
    assert (currency_exponent("cny"), currency_exponent("jpy"), currency_exponent("bhd")) == (
        2,
        0,
        3,
    )
