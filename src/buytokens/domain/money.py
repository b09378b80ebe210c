"""Money as integer minor units with an explicit currency."""

from __future__ import annotations

import re

import attrs

from buytokens.domain.errors import InvalidMoney

# Stripe's own lists: https://docs.stripe.com/currencies#zero-decimal
_ZERO_DECIMAL = frozenset(
    ("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd")
) | {"vuv", "xaf", "xof", "xpf"}
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
_SYMBOLS = {"cny": "¥", "usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "hkd": "HK$"}
_CODE = re.compile(r"^[a-z]{3}$")

MAX_AMOUNT = 999_999_999_999
"""The largest charge in minor units: twelve digits, Stripe's limit for IDR (most currencies
stop at eight). A catalogue price above it could never be paid."""


def _check_currency(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not _CODE.match(value):
        raise InvalidMoney(f"currency must be a lower-case ISO 4217 code, got {value!r}")


def _check_amount(_instance: object, _attribute: object, value: int) -> None:
    if type(value) is not int:
        raise InvalidMoney(f"amount must be an integer number of minor units, got {value!r}")


def currency_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has in Stripe's API (2 for CNY and USD).

    This is Stripe's count, which differs from ISO 4217 and from browsers' currency
    data for some currencies (ISK, HUF, IDR...): amounts are only ever read with it.
    """
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    return 2


@attrs.frozen(order=False)
class Money:
    """An amount in a currency's smallest unit (fen for CNY, cents for USD)."""

    amount: int = attrs.field(validator=_check_amount)
    currency: str = attrs.field(validator=_check_currency)

    @classmethod
    def of(cls, amount: int, currency: str) -> Money:
        """Build money from minor units, normalising the currency code's case."""
        return cls(amount, currency.lower() if isinstance(currency, str) else currency)

    def __add__(self, other: Money) -> Money:
        self._require_same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._require_same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._require_same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._require_same_currency(other)
        return self.amount <= other.amount

    @property
    def exponent(self) -> int:
        """How many decimal places this currency's minor unit has, as Stripe counts them."""
        return currency_exponent(self.currency)

    def _require_same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidMoney(f"cannot combine {self.currency} with {other.currency}")

    def format(self) -> str:
        """Human form with the currency's symbol and digit grouping, e.g. ``¥1,000.00``."""
        exponent = self.exponent
        sign = "-" if self.amount < 0 else ""
        whole, fraction = divmod(abs(self.amount), 10**exponent)
        text = f"{whole:,}"
        if exponent:
            text += f".{fraction:0{exponent}d}"
        symbol = _SYMBOLS.get(self.currency)
        if symbol is None:
            return f"{sign}{text} {self.currency.upper()}"
        return f"{sign}{symbol}{text}"
