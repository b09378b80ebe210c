"""Token packages, the catalogue that offers them, and the payment methods a buyer may choose."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator

import attrs

from buytokens.domain.errors import InvalidCatalogue, UnknownPackage, UnsupportedPaymentMethod
from buytokens.domain.ledger import MAX_TOKENS
from buytokens.domain.money import MAX_AMOUNT, Money

_PACKAGE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


@attrs.frozen
class TokenPackage:
    """A number of tokens sold at a price, optionally shown against a higher original price."""

    id: str
    label: str
    tokens: int
    price: Money
    original_price: Money | None = None
    popular: bool = False

    def __attrs_post_init__(self) -> None:
        field = f"packages.{self.id}"
        if not isinstance(self.id, str) or not _PACKAGE_ID.match(self.id):
            raise InvalidCatalogue(
                "must be 1-64 letters, digits, '_' or '-'", field=f"packages.id ({self.id!r})"
            )
        if not isinstance(self.label, str) or not self.label.strip():
            raise InvalidCatalogue("must be a non-empty string", field=f"{field}.label")
        if type(self.tokens) is not int or self.tokens <= 0:
            raise InvalidCatalogue("must be a positive integer", field=f"{field}.tokens")
        if self.tokens > MAX_TOKENS:
            raise InvalidCatalogue(f"must be at most {MAX_TOKENS:,}", field=f"{field}.tokens")
        if self.price.amount <= 0:
            raise InvalidCatalogue(
                "must be a positive integer of minor units", field=f"{field}.amount"
            )
        if self.price.amount > MAX_AMOUNT:
            raise InvalidCatalogue(
                f"must be at most {MAX_AMOUNT:,} minor units (Stripe's largest charge)",
                field=f"{field}.amount",
            )
        if self.original_price is not None:
            if self.original_price.currency != self.price.currency:
                raise InvalidCatalogue(
                    "must be in the same currency as the price", field=f"{field}.original_amount"
                )
            if self.original_price.amount < self.price.amount:
                raise InvalidCatalogue(
                    "must not be below the price", field=f"{field}.original_amount"
                )
            if self.original_price.amount > MAX_AMOUNT:
                raise InvalidCatalogue(
                    f"must be at most {MAX_AMOUNT:,} minor units", field=f"{field}.original_amount"
                )

    @property
    def discount_percent(self) -> int:
        """Whole-percent saving against the original price; 0 when there is none."""
        if self.original_price is None:
            return 0
        saved = self.original_price.amount - self.price.amount
        return (saved * 100 + self.original_price.amount // 2) // self.original_price.amount

    @property
    def shown_original_price(self) -> Money:
        """The original price, or the price itself when the package has no discount."""
        return self.original_price if self.original_price is not None else self.price


def _as_tuple(packages: Iterable[TokenPackage]) -> tuple[TokenPackage, ...]:
    return tuple(packages)


@attrs.frozen
class Catalogue:
    """The packages on sale, all in one currency, with unique ids."""

    packages: tuple[TokenPackage, ...] = attrs.field(converter=_as_tuple)
    _by_id: dict[str, TokenPackage] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not self.packages:
            raise InvalidCatalogue("must list at least one package", field="packages")
        by_id: dict[str, TokenPackage] = {}
        currency = self.packages[0].price.currency
        for package in self.packages:
            if package.id in by_id:
                raise InvalidCatalogue("is listed twice", field=f"packages.{package.id}")
            if package.price.currency != currency:
                raise InvalidCatalogue(
                    f"is {package.price.currency} but the catalogue is {currency}; "
                    "mixed currencies are not supported",
                    field=f"packages.{package.id}.currency",
                )
            by_id[package.id] = package
        object.__setattr__(self, "_by_id", by_id)

    @property
    def currency(self) -> str:
        """The one currency every package is priced in."""
        return self.packages[0].price.currency

    def get(self, package_id: str) -> TokenPackage:
        """The package with this id; raises UnknownPackage otherwise."""
        try:
            return self._by_id[package_id]
        except (KeyError, TypeError):
            raise UnknownPackage(f"no package with id {package_id!r}") from None

    def find(self, package_id: str) -> TokenPackage | None:
        """The package with this id, or None."""
        return self._by_id.get(package_id)

    def __iter__(self) -> Iterator[TokenPackage]:
        return iter(self.packages)

    def __len__(self) -> int:
        return len(self.packages)


def _cny(amount: int) -> Money:
    return Money(amount, "cny")


DEFAULT_CATALOGUE = Catalogue(
    (
        TokenPackage("package_100k", "Basic", 100_000, _cny(1_000)),
        TokenPackage("package_500k", "Popular", 500_000, _cny(3_500), _cny(5_000), popular=True),
        TokenPackage("package_1m", "Pro", 1_000_000, _cny(5_500), _cny(10_000)),
        TokenPackage("package_10m", "Enterprise", 10_000_000, _cny(28_000), _cny(100_000)),
    )
)


class PaymentMethod(enum.StrEnum):
    """Payment method types this product can offer (Stripe's names for them)."""

    CARD = "card"  # Google Pay and Apple Pay are wallets on top of card
    ALIPAY = "alipay"
    WECHAT_PAY = "wechat_pay"
    CRYPTO = "crypto"  # USD stablecoins, US accounts only


def require_payment_method(
    name: str, currency: str, offered: Iterable[PaymentMethod]
) -> PaymentMethod:
    """Parse ``name`` as one of the methods ``offered`` for ``currency``.

    Which methods can pay in which currency is the payment provider's fact; the
    caller passes what it offers. Raises UnsupportedPaymentMethod.
    """
    offered = tuple(offered)
    for method in offered:
        if method.value == name:
            return method
    names = ", ".join(m.value for m in offered)
    raise UnsupportedPaymentMethod(
        f"payment method {name!r} is not offered for {currency.upper()}; choose one of: {names}"
    )
