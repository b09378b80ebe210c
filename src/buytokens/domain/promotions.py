"""Promo codes: what an operator defines, the price a code gives, and why one is refused.

Pricing rules (docs/CODES.md says why):

* A percent-off discount is rounded *up* to a whole minor unit, in the buyer's
  favour: "20 % off" never charges more than 80 % of the price. The merchant
  gives away less than one minor unit per purchase for a promise anyone can check.
* No price goes below the provider's minimum charge for the currency: a larger
  discount is clamped to that minimum, so a 100 %-off code means "as cheap as a
  card payment can be" on every package. A code that cannot take anything off a
  package (its price is already at the minimum) is refused for that package
  rather than spending one of the buyer's uses on nothing.
* The discounted price is never above the package's price, and never zero.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from buytokens.domain.catalogue import Catalogue, TokenPackage
from buytokens.domain.errors import InvalidMoney, InvalidPromoCode, InvalidPromoDefinition
from buytokens.domain.money import Money

_PROMO_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,31}$")

# Stripe's documented minimum charge amounts, in minor units, by *settlement*
# currency (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
# A charge in another currency must convert to at least the settlement minimum.
STRIPE_MINIMUM_CHARGE: Mapping[str, int] = MappingProxyType(
    {
        "usd": 50,
        "aed": 200,
        "aud": 50,
        "bgn": 100,
        "brl": 50,
        "cad": 50,
        "chf": 50,
        "czk": 1_500,
        "dkk": 250,
        "eur": 50,
        "gbp": 30,
        "hkd": 400,
        "huf": 17_500,
        "inr": 50,
        "jpy": 50,
        "mxn": 1_000,
        "myr": 200,
        "nok": 300,
        "nzd": 50,
        "pln": 200,
        "ron": 200,
        "sek": 300,
        "sgd": 50,
        "thb": 1_000,
    }
)

# Our own floors for presentment currencies Stripe's table does not list: at least
# the largest settlement minimum above, converted at the time of writing, with a
# margin (CZK 15.00 is about ¥4.6, CHF 0.50 and EUR 0.50 about ¥4; so ¥5.00).
PRESENTMENT_FLOOR_ESTIMATES: Mapping[str, int] = MappingProxyType({"cny": 500})


def minimum_charge(currency: str) -> Money | None:
    """The lowest amount a discounted price may come to in ``currency``; None if unknown."""
    amount = STRIPE_MINIMUM_CHARGE.get(currency, PRESENTMENT_FLOOR_ESTIMATES.get(currency))
    return None if amount is None else Money(amount, currency)


class PromoRejection(enum.StrEnum):
    """Why a promo code was refused; the client sees it in the message of ``invalid_promo_code``."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    DISABLED = "disabled"
    USED_UP = "used_up"
    NOT_FOR_PACKAGE = "not_for_package"
    ALREADY_USED = "already_used"


def refuse(reason: PromoRejection, message: str) -> InvalidPromoCode:
    """The error for a refused code."""
    return InvalidPromoCode(message, reason=reason.value)


def normal_promo_code(text: object) -> str | None:
    """The normal (upper-case) form of a promo code, or None if ``text`` cannot be one.

    A code is 3-32 ASCII letters, digits, ``-`` or ``_``, starting with a letter or digit.
    """
    if not isinstance(text, str) or len(text) > 64:
        return None
    normal = text.strip().upper()
    return normal if normal.isascii() and _PROMO_CODE.match(normal) else None


def require_promo_code(text: object) -> str:
    """The normal form of a code a buyer typed; raises InvalidPromoCode (unknown) otherwise."""
    normal = normal_promo_code(text)
    if normal is None:
        raise refuse(PromoRejection.UNKNOWN, "there is no such promo code")
    return normal


@attrs.frozen
class PercentOff:
    """A discount of a whole percentage of the price, 1 to 100."""

    percent: int

    def __attrs_post_init__(self) -> None:
        if type(self.percent) is not int or not 1 <= self.percent <= 100:
            raise InvalidPromoDefinition(f"percent off must be 1 to 100, got {self.percent!r}")

    def off(self, price: Money) -> int:
        """Minor units taken off ``price``, rounded up (in the buyer's favour)."""
        return -(-price.amount * self.percent // 100)

    def describe(self) -> str:
        """For people, e.g. ``20% off``."""
        return f"{self.percent}% off"


@attrs.frozen
class AmountOff:
    """A discount of a fixed amount, in the catalogue's currency."""

    amount: Money

    def __attrs_post_init__(self) -> None:
        if self.amount.amount <= 0:
            raise InvalidPromoDefinition("amount off must be a positive number of minor units")

    def off(self, price: Money) -> int:
        """Minor units taken off ``price``; raises InvalidMoney across currencies."""
        if self.amount.currency != price.currency:
            raise InvalidMoney(f"cannot take {self.amount.currency} off a {price.currency} price")
        return self.amount.amount

    def describe(self) -> str:
        """For people, e.g. ``¥5.00 off``."""
        return f"{self.amount.format()} off"


Discount = PercentOff | AmountOff


def _positive_or_none(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise InvalidPromoDefinition(f"{attribute.name} must be a positive integer, got {value!r}")


def _package_set(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class PromoCode:
    """An operator's promo code.

    ``package_ids`` None means every package; ``max_redemptions`` None means no
    total limit. ``per_user`` uses per buyer, 1 unless said otherwise.
    """

    code: str
    discount: Discount
    created_at: datetime
    package_ids: frozenset[str] | None = attrs.field(default=None, converter=_package_set)
    max_redemptions: int | None = attrs.field(default=None, validator=_positive_or_none)
    per_user: int = attrs.field(default=1, validator=_positive_or_none)
    expires_at: datetime | None = None
    disabled: bool = False

    def __attrs_post_init__(self) -> None:
        if normal_promo_code(self.code) != self.code:
            raise InvalidPromoDefinition(
                f"promo code {self.code!r} must be 3-32 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        if self.package_ids is not None and not self.package_ids:
            raise InvalidPromoDefinition("a code limited to packages must name at least one")
        if self.expires_at is not None and self.expires_at <= self.created_at:
            raise InvalidPromoDefinition(
                f"the expiry {self.expires_at.isoformat()} is not after the code's creation"
            )

    @classmethod
    def define(
        cls,
        code: str,
        at: datetime,
        *,
        percent_off: int | None = None,
        amount_off: Money | None = None,
        package_ids: Iterable[str] | None = None,
        max_redemptions: int | None = None,
        per_user: int = 1,
        expires_at: datetime | None = None,
    ) -> PromoCode:
        """A new code as ``buytokens promo create`` takes it: exactly one kind of discount."""
        discount: Discount
        if percent_off is not None and amount_off is None:
            discount = PercentOff(percent_off)
        elif amount_off is not None and percent_off is None:
            discount = AmountOff(amount_off)
        else:
            raise InvalidPromoDefinition("give exactly one of percent off and amount off")
        normal = normal_promo_code(code)
        if normal is None:
            raise InvalidPromoDefinition(
                f"promo code {code!r} must be 3-32 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        return cls(normal, discount, at, package_ids, max_redemptions, per_user, expires_at, False)

    def disable(self) -> PromoCode:
        """The same code, refused from now on; purchases already made keep their price."""
        return attrs.evolve(self, disabled=True)

    def applies_to(self, package_id: str) -> bool:
        """Whether the code may discount this package at all."""
        return self.package_ids is None or package_id in self.package_ids

    def check(self, package_id: str, now: datetime) -> None:
        """Raise InvalidPromoCode unless the code may be used on ``package_id`` at ``now``."""
        if self.disabled:
            raise refuse(PromoRejection.DISABLED, f"promo code {self.code} is no longer offered")
        if self.expires_at is not None and now >= self.expires_at:
            raise refuse(
                PromoRejection.EXPIRED,
                f"promo code {self.code} expired on {self.expires_at:%Y-%m-%d %H:%M} UTC",
            )
        if not self.applies_to(package_id):
            raise refuse(
                PromoRejection.NOT_FOR_PACKAGE, f"promo code {self.code} is not for this package"
            )


def check_definition(promo: PromoCode, catalogue: Catalogue) -> None:
    """Refuse, as ``promo create`` should, a code that could never price a package."""
    if promo.package_ids is not None:
        unknown = sorted(promo.package_ids - {package.id for package in catalogue})
        if unknown:
            raise InvalidPromoDefinition(f"no package with id {', '.join(unknown)}")
    if (
        isinstance(promo.discount, AmountOff)
        and promo.discount.amount.currency != catalogue.currency
    ):
        raise InvalidPromoDefinition(
            f"amount off is in {promo.discount.amount.currency} "
            f"but the catalogue is in {catalogue.currency}"
        )
    if minimum_charge(catalogue.currency) is None:
        raise InvalidPromoDefinition(
            f"promo codes need the provider's minimum charge for {catalogue.currency}, "
            "which this version does not know"
        )


@attrs.frozen
class PromoQuote:
    """A package's price with a promo code."""

    code: str
    package_id: str
    original: Money
    amount: Money

    @property
    def discount(self) -> Money:
        """What the code takes off."""
        return self.original - self.amount


def price_with(promo: PromoCode, package: TokenPackage) -> PromoQuote:
    """The price of ``package`` with ``promo``, between the minimum charge and the price.

    Does not look at limits, expiry or the disabled flag (see ``quote``). Raises
    InvalidPromoCode (not for this package) when the code can take nothing off.
    """
    price = package.price
    floor = minimum_charge(price.currency)
    if floor is None:
        raise refuse(
            PromoRejection.NOT_FOR_PACKAGE,
            f"promo codes cannot discount prices in {price.currency.upper()}",
        )
    if isinstance(promo.discount, AmountOff) and promo.discount.amount.currency != price.currency:
        raise refuse(
            PromoRejection.NOT_FOR_PACKAGE,
            f"promo code {promo.code} is for prices in {promo.discount.amount.currency.upper()}",
        )
    amount = min(price.amount, max(floor.amount, price.amount - promo.discount.off(price)))
    if amount >= price.amount:
        raise refuse(
            PromoRejection.NOT_FOR_PACKAGE,
            f"promo code {promo.code} cannot lower this package's price: "
            f"{price.format()} is already the lowest a payment may be",
        )
    return PromoQuote(promo.code, package.id, price, Money(amount, price.currency))


def quote(promo: PromoCode | None, package: TokenPackage, now: datetime) -> PromoQuote:
    """The checkout's price with a looked-up code (None: no such code), or InvalidPromoCode.

    Limits on uses are decided where uses are held (see ``promo_uses``).
    """
    if promo is None:
        raise refuse(PromoRejection.UNKNOWN, "there is no such promo code")
    promo.check(package.id, now)
    return price_with(promo, package)
