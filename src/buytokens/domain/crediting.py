"""The crediting rules: how a payment event changes a purchase and the ledger.

``decide`` is pure. It merges the event's facts into the purchase and emits the
ledger changes that bring the purchase's net effect on the balance in line with
those facts. Applying an event that adds no new fact decides nothing, which is
what makes redelivery a no-op; the store's version check and the unique
``purchase:<intent>`` key make a concurrent second application impossible.

Tokens follow the money. A purchase credits its package's C tokens for a price
of P. The money gone from the merchant is the cumulative refund plus the amount
of every dispute that holds money (a chargeback not yet reinstated or won, or a
lost one), at most P. The take-back target is ``C * gone // P``: the buyer keeps
the tokens the money still with the merchant pays for, rounded in the buyer's
favour. It is split into the refunded share ``C * refunded // P`` (``refund``
entries) and the rest (``dispute`` entries).

* When the target rises, the rise is asked of the balance; the store settles it
  without going below zero, and what it could not take is the entry's shortfall.
* When the target falls (a dispute's money came back), the purchase gives back
  what its take-backs actually took beyond the new target, never more:
  ``max(0, taken_back - target)``, where ``taken_back`` is the sum of what its
  ``refund`` and ``dispute`` entries applied, read from the ledger by the caller.
  A shortfall was never taken, so no path (a release, a later refund, an
  approval) ever pays it out.
* A refund only ever raises the target (refunds are cumulative). A dispute that
  Stripe closes as ``prevented`` or ``charge_refunded`` was settled by a refund:
  the dispute holds nothing, and that refund's ``charge.refunded`` takes its
  share. Refunds and disputes together never take back more than C.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.checkout import Delivery
from buytokens.domain.errors import (
    GiftAlreadyRedeemed,
    GiftNotFound,
    GiftVoid,
    NotFound,
    UserError,
)
from buytokens.domain.events import (
    AttemptOutcome,
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentAttempted,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry, check_reason
from buytokens.domain.money import Money
from buytokens.domain.purchases import DisputeRecord, Purchase


class Disposition(enum.StrEnum):
    """What applying an event came to."""

    APPLIED = "applied"  # new facts stored (and possibly ledger changes made)
    DUPLICATE = "duplicate"  # nothing new: already applied, or superseded
    IGNORED = "ignored"  # nothing to do for this event (e.g. an unknown intent's failure)
    NEEDS_REVIEW = "needs_review"  # genuine but inconsistent: stored, flagged, credited nothing


@attrs.frozen
class PurchaseTransition:
    """Replace the purchase at ``expected_version`` (None: it must not exist yet) and
    make ``changes`` to the ledger, all or nothing; journal ``delivery`` with them
    when the transition came from a provider event."""

    expected_version: int | None
    purchase: Purchase
    changes: tuple[LedgerChange, ...] = ()
    delivery: Delivery | None = None


@attrs.frozen
class Decision:
    """The outcome of ``decide``: a transition to store, or None when nothing changes."""

    disposition: Disposition
    transition: PurchaseTransition | None = None
    reason: str = ""


def credit_key(payment_intent_id: str) -> str:
    """The ledger key of an intent's one and only purchase credit."""
    return f"purchase:{payment_intent_id}"


def decide(
    current: Purchase | None,
    event: PaymentEvent,
    catalogue: Catalogue,
    now: datetime,
    *,
    taken_back: int,
    promo_refusal: str | None = None,
) -> Decision:
    """Decide what ``event`` changes, given the stored purchase (None if never seen).

    ``promo_refusal`` says why a succeeded payment's promo code use could not be
    counted (its limits were full): the purchase then goes to review, crediting nothing.

    ``taken_back`` is what the purchase's take-backs actually took from the
    balance so far (see ``taken_back``), the most a release can give back.
    """
    if isinstance(event, PaymentSucceeded):
        return _on_succeeded(current, event, catalogue, now, taken_back, promo_refusal)
    if isinstance(event, PaymentAttempted):
        return _on_attempted(current, event, now)
    if isinstance(event, ChargeRefunded):
        return _on_refunded(current, event, now, taken_back)
    return _on_dispute(current, event, now, taken_back)


def taken_back(entries: Iterable[LedgerEntry]) -> int:
    """Tokens a purchase's refund and dispute entries took, net of what they gave back.

    Counts what was applied, never what was asked: a shortfall was not taken.
    """
    return -sum(entry.applied for entry in entries if entry.kind in _TAKEBACK_KINDS)


_TAKEBACK_KINDS = frozenset({EntryKind.REFUND, EntryKind.DISPUTE})


def _promo_price(price: Money, discount: int | None) -> tuple[Money, str | None]:
    """A never-seen intent's price with its signed discount, or the problem with it."""
    if discount is None or not 0 < discount < price.amount:
        return price, f"the promo code's discountAmount metadata {discount!r} does not fit"
    return Money(price.amount - discount, price.currency), None


def _on_succeeded(
    current: Purchase | None,
    event: PaymentSucceeded,
    catalogue: Catalogue,
    now: datetime,
    taken: int,
    promo_refusal: str | None,
) -> Decision:
    if current is not None and current.succeeded:
        return Decision(Disposition.DUPLICATE)
    known_user, known_package, tokens, price, gift = (
        (None, None, 0, None, False)
        if current is None
        else (current.user_id, current.package_id, current.tokens, current.price, current.gift)
    )
    user_id = known_user or event.user_id
    package_id = known_package or event.package_id
    problem = None
    if not event.user_id or not event.package_id:
        problem = "the payment carries no userId/packageId metadata"
    elif known_user is not None and event.user_id != known_user:
        problem = f"metadata userId {event.user_id!r} differs from the purchaser {known_user!r}"
    elif known_package is not None and event.package_id != known_package:
        problem = f"metadata packageId {event.package_id!r} differs from {known_package!r}"
    elif price is None:
        package = catalogue.find(event.package_id)
        if package is None:
            problem = f"unknown package {event.package_id!r}"
        else:
            tokens, price = package.tokens, package.price
            if event.promo_code is not None:
                price, problem = _promo_price(price, event.discount_amount)
    if problem is None and promo_refusal is not None:
        problem = promo_refusal
    if problem is None and price is not None and event.amount != price:
        problem = f"paid {_describe(event.amount)} but the package costs {_describe(price)}"
    pi = event.payment_intent_id
    facts: dict[str, Any] = {
        "user_id": user_id,
        "package_id": package_id,
        "tokens": tokens,
        "price": price,
        "succeeded": True,
        "gift": gift or event.gift,
    }
    if problem is not None or user_id is None:
        flagged = _next(current, pi, now, review_reason=problem, **facts)
        return _transition(current, flagged, (), Disposition.NEEDS_REVIEW, problem or "")
    if facts["gift"]:
        # A gift credits no one when paid: its code credits the redeemer (``redeem_gift``).
        settled, takebacks = _rebalance(_next(current, pi, now, **facts), taken)
        return _transition(current, settled, takebacks, Disposition.APPLIED)
    credited = _next(current, pi, now, tokens_credited=tokens, **facts)
    credit = LedgerChange(
        key=credit_key(event.payment_intent_id),
        user_id=user_id,
        kind=EntryKind.PURCHASE,
        tokens=tokens,
        payment_intent_id=event.payment_intent_id,
        reason=f"bought {package_id}",
    )
    settled, takebacks = _rebalance(credited, taken)
    return _transition(current, settled, (credit, *takebacks), Disposition.APPLIED)


def _on_attempted(current: Purchase | None, event: PaymentAttempted, now: datetime) -> Decision:
    if current is None:
        return Decision(Disposition.IGNORED, reason="attempt on an intent this store never saw")
    if current.succeeded:
        return Decision(Disposition.DUPLICATE, reason="a late attempt never undoes a success")
    if current.attempt_at is not None and event.occurred_at <= current.attempt_at:
        if event.occurred_at < current.attempt_at or event.outcome is current.attempt:
            return Decision(Disposition.DUPLICATE)
        if _attempt_rank(event.outcome) <= _attempt_rank(current.attempt):
            return Decision(Disposition.DUPLICATE)
    updated = _next(
        current, current.payment_intent_id, now, attempt=event.outcome, attempt_at=event.occurred_at
    )
    return _transition(current, updated, (), Disposition.APPLIED)


NOT_APPROVABLE = "not_approvable"
"""The code of the refusal to approve a purchase whose record cannot say what to credit:
an operator credits such a purchase by hand with an adjustment instead."""


def approve_review(
    current: Purchase | None, reason: str, now: datetime, *, taken_back: int
) -> Decision:
    """Credit a flagged purchase that an operator checked and found good.

    The credit uses the intent's one credit key, so it can still happen only once;
    refunds and disputes already known are settled against it at the same time.
    A purchase flagged after it was credited (a refund in another currency) is
    only cleared: it is credited nothing again. ``taken_back`` is as for ``decide``.
    Raises UserError when there is nothing to approve.
    """
    if current is None:
        raise NotFound("no purchase with that payment intent id")
    pi = current.payment_intent_id
    if current.review_reason is None:
        raise UserError(
            f"purchase {pi} is not awaiting review (it is {current.status.value})",
            code="not_in_review",
        )
    if not current.succeeded or current.user_id is None or current.price is None:
        raise UserError(
            f"purchase {pi} cannot be credited from its own record ({current.review_reason})",
            code=NOT_APPROVABLE,
        )
    reason = check_reason(reason)
    if current.tokens_credited or current.gift:
        # Credited already, or a gift: its code credits the redeemer, not the buyer.
        cleared = _next(current, pi, now, review_reason=None)
        settled, takebacks = _rebalance(cleared, taken_back)
        return _transition(current, settled, takebacks, Disposition.APPLIED)
    approved = _next(current, pi, now, review_reason=None, tokens_credited=current.tokens)
    credit = LedgerChange(
        key=credit_key(pi),
        user_id=current.user_id,
        kind=EntryKind.PURCHASE,
        tokens=current.tokens,
        payment_intent_id=pi,
        reason=f"approved after review: {reason.strip()}",
    )
    settled, takebacks = _rebalance(approved, taken_back)
    return _transition(current, settled, (credit, *takebacks), Disposition.APPLIED)


def _attempt_rank(outcome: AttemptOutcome | None) -> int:
    # Ties at the same second resolve towards the more final outcome.
    order = (None, AttemptOutcome.PROCESSING, AttemptOutcome.FAILED, AttemptOutcome.CANCELED)
    return order.index(outcome)


def _on_refunded(
    current: Purchase | None, event: ChargeRefunded, now: datetime, taken: int
) -> Decision:
    pi = event.payment_intent_id
    price = None if current is None else current.price
    if price is not None and event.amount_refunded.currency != price.currency:
        problem = f"refund in {event.amount_refunded.currency} for a {price.currency} payment"
        if current is not None and current.review_reason is not None:
            return Decision(Disposition.DUPLICATE)
        flagged = _next(current, pi, now, review_reason=problem)
        return _transition(current, flagged, (), Disposition.NEEDS_REVIEW, problem)
    if event.amount_refunded.amount <= (0 if current is None else current.amount_refunded):
        return Decision(Disposition.DUPLICATE)
    updated = _next(current, pi, now, amount_refunded=event.amount_refunded.amount)
    settled, changes = _rebalance(updated, taken)
    return _transition(current, settled, changes, Disposition.APPLIED)


def _on_dispute(
    current: Purchase | None, event: DisputeChanged, now: datetime, taken: int
) -> Decision:
    known = None if current is None else current.dispute(event.dispute_id)
    state = event.state if known is None else known.state.after(event.state)
    if known is not None and state is known.state:
        return Decision(Disposition.DUPLICATE)
    record = DisputeRecord(event.dispute_id, event.amount.amount, state)
    disputes = () if current is None else current.disputes
    others = tuple(d for d in disputes if d.dispute_id != event.dispute_id)
    updated = _next(current, event.payment_intent_id, now, disputes=(*others, record))
    settled, changes = _rebalance(updated, taken)
    return _transition(current, settled, changes, Disposition.APPLIED)


def _next(
    current: Purchase | None, payment_intent_id: str, now: datetime, **facts: Any
) -> Purchase:
    """The purchase at its next version with ``facts`` merged in, built once.

    An intent never seen starts from nothing known: no user, package or price.
    """
    if current is None:
        return Purchase(
            payment_intent_id,
            facts.pop("user_id", None),
            facts.pop("package_id", None),
            facts.pop("tokens", 0),
            facts.pop("price", None),
            now,
            now,
            version=1,
            **facts,
        )
    return attrs.evolve(current, updated_at=now, version=current.version + 1, **facts)


def _rebalance(purchase: Purchase, taken: int) -> tuple[Purchase, tuple[LedgerChange, ...]]:
    """Move the take-backs to the target the money sets (see the module documentation).

    ``purchase`` is at its next version; ``taken`` is what the take-backs so far
    actually took from the balance.
    """
    purchase = _void_if_withdrawn(purchase)
    refund_target, held_target = _takeback_targets(purchase)
    target = refund_target + held_target
    reached = purchase.tokens_taken_back
    settled = (
        purchase
        if refund_target == purchase.tokens_refunded and held_target == purchase.tokens_held
        else attrs.evolve(purchase, tokens_refunded=refund_target, tokens_held=held_target)
    )
    owner = purchase.beneficiary
    if owner is None or target == reached:
        return settled, ()
    pi = purchase.payment_intent_id
    version = purchase.version
    if target < reached:
        # Money came back: return what was taken beyond the target, never a shortfall.
        give_back = max(0, taken - target)
        if not give_back:
            return settled, ()
        release = LedgerChange(
            key=f"dispute:{pi}:{version}",
            user_id=owner,
            kind=EntryKind.DISPUTE,
            tokens=give_back,
            payment_intent_id=pi,
            reason="dispute released",
        )
        return settled, (release,)
    rise = target - reached
    refund_rise = min(rise, max(0, refund_target - purchase.tokens_refunded))
    changes = []
    if refund_rise:
        changes.append(
            LedgerChange(
                key=f"refund:{pi}:{version}",
                user_id=owner,
                kind=EntryKind.REFUND,
                tokens=-refund_rise,
                payment_intent_id=pi,
                reason=f"refund of {purchase.amount_refunded} minor units",
            )
        )
    if rise > refund_rise:
        changes.append(
            LedgerChange(
                key=f"dispute:{pi}:{version}",
                user_id=owner,
                kind=EntryKind.DISPUTE,
                tokens=refund_rise - rise,
                payment_intent_id=pi,
                reason="dispute hold",
            )
        )
    return settled, tuple(changes)


def _void_if_withdrawn(purchase: Purchase) -> Purchase:
    """A gift nobody redeemed yet is void for good once any of its money went back: a
    refund, or a chargeback (even one later won: the gift was withdrawn meanwhile)."""
    if not purchase.gift or purchase.redeemed_by is not None or purchase.void_reason:
        return purchase
    if purchase.amount_refunded > 0:
        return attrs.evolve(purchase, void_reason="its payment was refunded")
    if any(d.state in _CHARGEBACK_STATES for d in purchase.disputes):
        return attrs.evolve(purchase, void_reason="its payment was disputed")
    return purchase


# A dispute in these states took the money at some point (only a chargeback is won or lost),
# even if the event that withdrew it has not arrived yet; an inquiry never did.
_CHARGEBACK_STATES = frozenset(
    {DisputeState.OPEN, DisputeState.REINSTATED, DisputeState.WON, DisputeState.LOST}
)


def redeem_gift(
    current: Purchase | None, user_id: str, now: datetime, *, taken_back: int
) -> Decision:
    """Redeem a gift purchase for ``user_id``: credit its tokens to them, once.

    The credit is the purchase's own, under its one ``purchase:<intent>`` key, so
    an intent credits its tokens at most once whichever path credits it. From then
    on refunds and disputes take back from the redeemer (``Purchase.beneficiary``).
    Raises GiftNotFound (no such paid gift), GiftAlreadyRedeemed or GiftVoid.
    """
    if current is None or not current.gift or not current.succeeded:
        raise GiftNotFound("no such code, or it has expired")
    if current.review_reason is not None:
        raise GiftNotFound("this gift's payment is being checked; try again later")
    if current.redeemed_by is not None:
        assert current.redeemed_at is not None
        who = "you" if current.redeemed_by == user_id else "someone else"
        raise GiftAlreadyRedeemed(
            f"this code was already redeemed by {who} on {current.redeemed_at:%Y-%m-%d}"
        )
    if current.void_reason is not None:
        raise GiftVoid(f"this gift was withdrawn before it was redeemed ({current.void_reason})")
    pi = current.payment_intent_id
    redeemed = _next(
        current, pi, now, redeemed_by=user_id, redeemed_at=now, tokens_credited=current.tokens
    )
    credit = LedgerChange(
        key=credit_key(pi),
        user_id=redeemed.beneficiary or user_id,
        kind=EntryKind.REDEMPTION,
        tokens=current.tokens,
        payment_intent_id=pi,
        reason=f"redeemed a gift of {current.package_id}",
    )
    settled, takebacks = _rebalance(redeemed, taken_back)
    return _transition(current, settled, (credit, *takebacks), Disposition.APPLIED)


def _takeback_targets(purchase: Purchase) -> tuple[int, int]:
    """The refunded share, and what disputes hold beyond it; together at most the credit."""
    if purchase.price is None:
        return 0, 0
    credited = purchase.tokens_credited
    paid = purchase.price.amount
    refunded = min(purchase.amount_refunded, paid)
    withheld = sum(d.amount for d in purchase.disputes if d.state.holds_money)
    gone = min(paid, refunded + withheld)
    refund = credited * refunded // paid
    return refund, credited * gone // paid - refund


def _transition(
    current: Purchase | None,
    purchase: Purchase,
    changes: tuple[LedgerChange, ...],
    disposition: Disposition,
    reason: str = "",
) -> Decision:
    """Store ``purchase`` (built by ``_next``, at the version after ``current``'s)."""
    expected = None if current is None else current.version
    return Decision(disposition, PurchaseTransition(expected, purchase, changes), reason)


def _describe(money: Money) -> str:
    return f"{money.amount} {money.currency}"
