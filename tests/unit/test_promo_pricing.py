"""Promo codes: their definition, the reasons one is refused, and the price one gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue, TokenPackage
from buytokens.domain.errors import InvalidPromoCode, InvalidPromoDefinition, UserError
from buytokens.domain.money import Money
from buytokens.domain.promotions import (
    STRIPE_MINIMUM_CHARGE,
    AmountOff,
    PercentOff,
    PromoCode,
    PromoRejection,
    check_definition,
    minimum_charge,
    normal_promo_code,
    price_with,
    quote,
    require_promo_code,
)

T0 = datetime(2026, 5, 1, tzinfo=UTC)
BASIC = DEFAULT_CATALOGUE.get("package_100k")  # ¥10.00
POPULAR = DEFAULT_CATALOGUE.get("package_500k")  # ¥35.00


def _package(amount: int, currency: str = "cny") -> TokenPackage:
    return TokenPackage("p", "P", 1_000, Money(amount, currency))


def _refused(reason: PromoRejection) -> pytest.RaisesExc[InvalidPromoCode]:
    return pytest.raises(InvalidPromoCode, check=lambda e: e.reason == reason.value)


def test_minimum_charges_are_stripes_documented_figures() -> None:
    """A few of Stripe's published minimums, in minor units."""
    assert minimum_charge("usd") == Money(50, "usd")
    assert minimum_charge("gbp") == Money(30, "gbp")
    assert minimum_charge("jpy") == Money(50, "jpy")  # zero-decimal: ¥50
    assert minimum_charge("hkd") == Money(400, "hkd")
    assert minimum_charge("huf") == Money(17_500, "huf")
    assert "cny" not in STRIPE_MINIMUM_CHARGE  # Stripe lists settlement currencies only


def test_cny_floor_covers_every_settlement_minimum() -> None:
    """¥5.00: above the largest settlement minimum (CZK 15 ≈ ¥4.6) at today's rates."""
    assert minimum_charge("cny") == Money(500, "cny")
    assert minimum_charge("xyz") is None


@pytest.mark.parametrize(
    ("typed", "normal"),
    [("summer-26", "SUMMER-26"), ("  Welcome_10 ", "WELCOME_10"), ("ABC", "ABC")],
)
def test_promo_codes_are_case_insensitive(typed: str, normal: str) -> None:
    """A code is read in upper case with surrounding blanks removed."""
    assert normal_promo_code(typed) == normal
    assert require_promo_code(typed) == normal


@pytest.mark.parametrize(
    "typed", ["", "AB", "-ABC", "A" * 33, "SUMMER 26", "ÉTÉ26", "A$C", None, 7]
)
def test_text_that_cannot_be_a_code_is_an_unknown_code(typed: object) -> None:
    """A buyer's malformed code is simply unknown; an operator's is refused at creation."""
    assert normal_promo_code(typed) is None
    with _refused(PromoRejection.UNKNOWN):
        require_promo_code(typed)
    with pytest.raises(InvalidPromoDefinition):
        PromoCode.define(typed, T0, percent_off=10)  # type: ignore[arg-type]


def test_define_normalises_and_keeps_the_options() -> None:
    """What `promo create` takes is what the code is."""
    promo = PromoCode.define(
        "spring",
        T0,
        amount_off=Money(500, "cny"),
        package_ids=["package_1m"],
        max_redemptions=100,
        per_user=2,
        expires_at=T0 + timedelta(days=7),
    )
    assert promo.code == "SPRING"
    assert promo.discount == AmountOff(Money(500, "cny"))
    assert promo.package_ids == frozenset({"package_1m"})
    assert (promo.max_redemptions, promo.per_user, promo.disabled) == (100, 2, False)
    assert PromoCode.define("x-1", T0, percent_off=5).per_user == 1


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({}, "exactly one"),
        ({"percent_off": 10, "amount_off": Money(1, "cny")}, "exactly one"),
        ({"percent_off": 0}, "1 to 100"),
        ({"percent_off": 101}, "1 to 100"),
        ({"percent_off": 12.5}, "1 to 100"),
        ({"amount_off": Money(0, "cny")}, "positive"),
        ({"percent_off": 10, "max_redemptions": 0}, "max_redemptions"),
        ({"percent_off": 10, "per_user": 0}, "per_user"),
        ({"percent_off": 10, "per_user": True}, "per_user"),
        ({"percent_off": 10, "package_ids": []}, "at least one"),
        ({"percent_off": 10, "expires_at": T0}, "not after"),
    ],
)
def test_bad_definitions_are_refused_saying_why(options: dict[str, object], says: str) -> None:
    """Each broken option gets its own message."""
    with pytest.raises(InvalidPromoDefinition, match=says) as caught:
        PromoCode.define("CODE", T0, **options)  # type: ignore[arg-type]
    assert isinstance(caught.value, UserError)


def test_definition_is_checked_against_the_catalogue() -> None:
    """Unknown packages, a foreign currency, or a currency without a known minimum."""
    with pytest.raises(InvalidPromoDefinition, match="no package with id nope"):
        check_definition(
            PromoCode.define("A1B", T0, percent_off=5, package_ids=["nope", "package_1m"]),
            DEFAULT_CATALOGUE,
        )
    with pytest.raises(InvalidPromoDefinition, match="usd but the catalogue is in cny"):
        check_definition(PromoCode.define("A1B", T0, amount_off=Money(5, "usd")), DEFAULT_CATALOGUE)
    with pytest.raises(InvalidPromoDefinition, match="minimum charge for xyz"):
        check_definition(
            PromoCode.define("A1B", T0, percent_off=5), Catalogue([_package(1_000, "xyz")])
        )
    check_definition(PromoCode.define("A1B", T0, percent_off=5), DEFAULT_CATALOGUE)


def test_each_refusal_says_which_rule() -> None:
    """Unknown, disabled, expired and not-for-this-package are told apart."""
    promo = PromoCode.define(
        "ONLY-POPULAR", T0, percent_off=10, package_ids=[POPULAR.id], expires_at=T0 + timedelta(1)
    )
    with _refused(PromoRejection.UNKNOWN):
        quote(None, POPULAR, T0)
    with _refused(PromoRejection.NOT_FOR_PACKAGE) as wrong_package:
        quote(promo, BASIC, T0)
    with _refused(PromoRejection.EXPIRED) as expired:
        quote(promo, POPULAR, T0 + timedelta(days=1))
    with _refused(PromoRejection.DISABLED):
        quote(promo.disable(), POPULAR, T0)
    assert "not for this package" in wrong_package.value.message
    assert "expired" in expired.value.message
    assert wrong_package.value.code == "invalid_promo_code"
    assert quote(promo, POPULAR, T0).amount == Money(3_150, "cny")


def test_percent_off_rounds_in_the_buyers_favour() -> None:
    """10 % off 9.99 takes 1.00 off, never 0.99: the buyer pays at most 90 %."""
    assert PercentOff(10).off(Money(999, "usd")) == 100
    assert price_with(PromoCode.define("TEN", T0, percent_off=10), _package(999, "usd")).amount == (
        Money(899, "usd")
    )


def test_a_large_discount_is_clamped_to_the_minimum_charge() -> None:
    """100 % off, or more off than the price, comes to the currency's minimum, never zero."""
    free = PromoCode.define("FREE", T0, percent_off=100)
    assert price_with(free, POPULAR).amount == Money(500, "cny")
    assert price_with(free, POPULAR).discount == Money(3_000, "cny")
    huge = PromoCode.define("HUGE", T0, amount_off=Money(1_000_000, "cny"))
    assert price_with(huge, BASIC).amount == Money(500, "cny")


def test_a_code_that_can_take_nothing_off_is_refused_for_that_package() -> None:
    """A package already at the minimum is not a use worth spending."""
    with _refused(PromoRejection.NOT_FOR_PACKAGE) as caught:
        price_with(PromoCode.define("FREE", T0, percent_off=100), _package(500))
    assert "already the lowest" in caught.value.message
    with _refused(PromoRejection.NOT_FOR_PACKAGE):
        price_with(PromoCode.define("FREE", T0, percent_off=100), _package(300))


def test_an_amount_off_in_another_currency_is_not_for_this_package() -> None:
    """If the catalogue changed currency since the code was made, the code does not apply."""
    with _refused(PromoRejection.NOT_FOR_PACKAGE) as caught:
        price_with(PromoCode.define("FIVE", T0, amount_off=Money(500, "usd")), BASIC)
    assert "USD" in caught.value.message
    with _refused(PromoRejection.NOT_FOR_PACKAGE):
        price_with(PromoCode.define("FIVE", T0, percent_off=5), _package(10_000, "xyz"))


currencies = st.sampled_from(sorted({*STRIPE_MINIMUM_CHARGE, "cny"}))
discounts = st.one_of(
    st.integers(1, 100).map(PercentOff),
    st.integers(1, 10**9).map(lambda amount: ("amount", amount)),
)


@given(currencies, st.integers(1, 10**8), discounts)
def test_price_stays_between_the_minimum_and_the_package_price(
    currency: str, price: int, discount: PercentOff | tuple[str, int]
) -> None:
    """Any discount on any price: at least the minimum, below the price, or refused."""
    off = discount if isinstance(discount, PercentOff) else AmountOff(Money(discount[1], currency))
    promo = PromoCode(f"P{currency.upper()}", off, T0)
    floor = minimum_charge(currency)
    assert floor is not None
    if price <= floor.amount:  # nothing can come off: refused, and only then
        with _refused(PromoRejection.NOT_FOR_PACKAGE):
            price_with(promo, _package(price, currency))
        return
    priced = price_with(promo, _package(price, currency))
    assert floor.amount <= priced.amount.amount < price
    assert priced.amount.amount > 0
    assert priced.discount + priced.amount == Money(price, currency)
    if isinstance(off, PercentOff) and priced.amount != floor:
        assert priced.amount.amount * 100 <= price * (100 - off.percent)  # at least N % off
        assert (priced.amount.amount - 1) * 100 < price * (100 - off.percent)  # by < 1 unit
    if isinstance(off, AmountOff) and priced.amount != floor:
        assert priced.discount == off.amount
