"""The library's values for promo codes, gift codes and redemption codes.

``BuyTokens`` (``buytokens.api``) returns these; each is made here, once, from
what the services return. They are re-exported by ``buytokens``; this module
itself is internal.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import attrs

from buytokens.domain.codes import CodeKind, CodeRecord, CodeState
from buytokens.domain.errors import InvalidPromoDefinition, UserError
from buytokens.domain.money import Money
from buytokens.domain.promotions import PercentOff, PromoQuote
from buytokens.services.codes import Redeemed
from buytokens.services.gifts import GiftCodeView
from buytokens.services.promos import PromoListing


@attrs.frozen
class PromoCode:
    """A promo code as ``buytokens promo create`` defined it, with its uses so far.

    Exactly one of ``percent_off`` and ``amount_off`` is set. ``packages`` None
    means every package, ``max_redemptions`` None no total limit. ``paid`` counts
    the purchases paid with the code (for good: a refund does not give a use
    back), ``held`` the unpaid checkouts holding a use right now.
    """

    code: str
    percent_off: int | None
    amount_off: Money | None
    packages: frozenset[str] | None
    max_redemptions: int | None
    per_user: int
    expires_at: datetime | None
    disabled: bool
    created_at: datetime
    paid: int = 0
    held: int = 0


@attrs.frozen
class PromoPreview:
    """A package's price with a promo code, before paying: ``amount`` is what the buyer pays."""

    code: str
    package_id: str
    amount: Money
    original_amount: Money
    discount_amount: Money


@attrs.frozen
class RedeemedCode:
    """A code redeemed: the tokens it credited and the redeemer's token credits now."""

    tokens: int
    token_credits: int


@attrs.frozen
class GiftCode:
    """A paid gift's code, as its buyer sees it in the purchase list.

    ``code`` is None when the code secret changed since the purchase: the code
    still redeems, but it cannot be shown again. ``redeemed`` says whether
    someone redeemed it.
    """

    payment_intent_id: str
    code: str | None
    redeemed: bool


@attrs.frozen
class CodeListing:
    """One stored redemption or gift code, as ``buytokens codes list`` shows it.

    The code itself is never stored: ``hint`` is its last four symbols. A gift's
    ``payment_intent_id`` and ``buyer_id`` name its purchase; ``void_reason``
    says why a gift's code was withdrawn (its payment was refunded or disputed).
    """

    hint: str
    kind: CodeKind
    state: CodeState
    tokens: int
    created_at: datetime
    expires_at: datetime | None
    reason: str
    redeemed_by: str | None
    redeemed_at: datetime | None
    payment_intent_id: str | None = None
    buyer_id: str | None = None
    void_reason: str | None = None


def promo_code(listing: PromoListing) -> PromoCode:
    """The library's view of a stored promo code and its uses."""
    promo, discount = listing.promo, listing.promo.discount
    return PromoCode(
        promo.code,
        discount.percent if isinstance(discount, PercentOff) else None,
        None if isinstance(discount, PercentOff) else discount.amount,
        promo.package_ids,
        promo.max_redemptions,
        promo.per_user,
        promo.expires_at,
        promo.disabled,
        promo.created_at,
        listing.usage.paid,
        listing.usage.held,
    )


def promo_preview(quote: PromoQuote) -> PromoPreview:
    """The library's view of a price with a promo code."""
    return PromoPreview(quote.code, quote.package_id, quote.amount, quote.original, quote.discount)


def redeemed_code(redeemed: Redeemed) -> RedeemedCode:
    """The library's view of a redemption."""
    return RedeemedCode(redeemed.tokens, redeemed.token_credits)


def gift_code(payment_intent_id: str, view: GiftCodeView) -> GiftCode:
    """The library's view of a paid gift's code, in the form the buyer hands on."""
    return GiftCode(
        payment_intent_id, None if view.code is None else view.code.display(), view.redeemed
    )


def code_listing(record: CodeRecord, now: datetime) -> CodeListing:
    """The library's view of a stored code, its state as of ``now``."""
    return CodeListing(
        record.hint,
        record.kind,
        record.state(now),
        record.tokens,
        record.created_at,
        record.expires_at,
        record.reason,
        record.redeemed_by,
        record.redeemed_at,
        record.payment_intent_id,
        record.buyer_id,
        record.void_reason,
    )


def moment(value: datetime | None, name: str) -> datetime | None:
    """An expiry as the library takes it: a datetime, UTC when it names no time zone
    (as the CLI reads ``--expires``)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise UserError(
            f"{name} must be a datetime, got {type(value).__name__}", code="invalid_expiry"
        )
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def package_ids(packages: Iterable[str] | None) -> frozenset[str] | None:
    """The package ids a promo code is limited to, as a set; refuses one bare string."""
    if packages is None:
        return None
    ids = None if isinstance(packages, str) else _items(packages)
    if ids is None or not all(isinstance(package_id, str) for package_id in ids):
        raise InvalidPromoDefinition(
            "packages must be a collection of package ids, e.g. ['package_500k'], "
            f"got {_shown(packages)}"
        )
    return frozenset(ids)  # type: ignore[arg-type]  # all str, checked above


def _items(values: object) -> tuple[object, ...] | None:
    return tuple(values) if isinstance(values, Iterable) else None


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
