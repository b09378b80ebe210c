"""The crediting rules: how a payment event changes a purchase and the ledger.

``decide`` is pure. It merges the event's facts into the purchase and emits the
ledger changes that bring the purchase's net effect on the balance in line with
those facts. Applying an event that adds no new fact decides nothing, which is
what makes redelivery a no-op; the store's version check and the unique
``purchase:<intent>`` key make a concurrent second application impossible.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.checkout import Delivery
from buytokens.domain.errors import NotFound, UserError
from buytokens.domain.events import (
    AttemptOutcome,
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentAttempted,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.ledger import EntryKind, LedgerChange, check_reason
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
    current: Purchase | None, event: PaymentEvent, catalogue: Catalogue, now: datetime
) -> Decision:
    """Decide what ``event`` changes, given the stored purchase (None if never seen)."""
    if isinstance(event, PaymentSucceeded):
        return _on_succeeded(current, event, catalogue, now)
    if isinstance(event, PaymentAttempted):
        return _on_attempted(current, event, now)
    if isinstance(event, ChargeRefunded):
        return _on_refunded(current, event, now)
    return _on_dispute(current, event, now)


def _on_succeeded(
    current: Purchase | None, event: PaymentSucceeded, catalogue: Catalogue, now: datetime
) -> Decision:
    if current is not None and current.succeeded:
        return Decision(Disposition.DUPLICATE)
    base = current or _placeholder(event.payment_intent_id, now)
    user_id = base.user_id or event.user_id
    package_id = base.package_id or event.package_id
    tokens, price = base.tokens, base.price
    problem = None
    if not event.user_id or not event.package_id:
        problem = "the payment carries no userId/packageId metadata"
    elif base.user_id is not None and event.user_id != base.user_id:
        problem = f"metadata userId {event.user_id!r} differs from the purchaser {base.user_id!r}"
    elif base.package_id is not None and event.package_id != base.package_id:
        problem = f"metadata packageId {event.package_id!r} differs from {base.package_id!r}"
    elif price is None:
        package = catalogue.find(event.package_id)
        if package is None:
            problem = f"unknown package {event.package_id!r}"
        else:
            tokens, price = package.tokens, package.price
    if problem is None and price is not None and event.amount != price:
        problem = f"paid {_describe(event.amount)} but the package costs {_describe(price)}"
    merged = attrs.evolve(
        base,
        user_id=user_id,
        package_id=package_id,
        tokens=tokens,
        price=price,
        succeeded=True,
        updated_at=now,
    )
    if problem is not None or user_id is None:
        flagged = attrs.evolve(merged, review_reason=problem)
        return _transition(current, flagged, (), Disposition.NEEDS_REVIEW, problem or "")
    credited = attrs.evolve(merged, tokens_credited=tokens)
    credit = LedgerChange(
        key=credit_key(event.payment_intent_id),
        user_id=user_id,
        kind=EntryKind.PURCHASE,
        tokens=tokens,
        payment_intent_id=event.payment_intent_id,
        reason=f"bought {package_id}",
    )
    settled, takebacks = _rebalance(current, credited)
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
    updated = attrs.evolve(
        current, attempt=event.outcome, attempt_at=event.occurred_at, updated_at=now
    )
    return _transition(current, updated, (), Disposition.APPLIED)


def approve_review(current: Purchase | None, reason: str, now: datetime) -> Decision:
    """Credit a flagged purchase that an operator checked and found good.

    The credit uses the intent's one credit key, so it can still happen only once;
    refunds and disputes already known are settled against it at the same time.
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
            f"purchase {pi} cannot be credited from its own record ({current.review_reason}); "
            "use `buytokens grant` instead",
            code="not_approvable",
        )
    reason = check_reason(reason)
    approved = attrs.evolve(
        current, review_reason=None, tokens_credited=current.tokens, updated_at=now
    )
    credit = LedgerChange(
        key=credit_key(pi),
        user_id=current.user_id,
        kind=EntryKind.PURCHASE,
        tokens=current.tokens,
        payment_intent_id=pi,
        reason=f"approved after review: {reason.strip()}",
    )
    settled, takebacks = _rebalance(current, approved)
    return _transition(current, settled, (credit, *takebacks), Disposition.APPLIED)


def _attempt_rank(outcome: AttemptOutcome | None) -> int:
    # Ties at the same second resolve towards the more final outcome.
    order = (None, AttemptOutcome.PROCESSING, AttemptOutcome.FAILED, AttemptOutcome.CANCELED)
    return order.index(outcome)


def _on_refunded(current: Purchase | None, event: ChargeRefunded, now: datetime) -> Decision:
    base = current or _placeholder(event.payment_intent_id, now)
    if base.price is not None and event.amount_refunded.currency != base.price.currency:
        problem = f"refund in {event.amount_refunded.currency} for a {base.price.currency} payment"
        if base.review_reason is not None:
            return Decision(Disposition.DUPLICATE)
        flagged = attrs.evolve(base, review_reason=problem, updated_at=now)
        return _transition(current, flagged, (), Disposition.NEEDS_REVIEW, problem)
    if event.amount_refunded.amount <= base.amount_refunded:
        return Decision(Disposition.DUPLICATE)
    updated = attrs.evolve(base, amount_refunded=event.amount_refunded.amount, updated_at=now)
    settled, changes = _rebalance(current, updated)
    return _transition(current, settled, changes, Disposition.APPLIED)


def _on_dispute(current: Purchase | None, event: DisputeChanged, now: datetime) -> Decision:
    base = current or _placeholder(event.payment_intent_id, now)
    known = base.dispute(event.dispute_id)
    if known is not None and (
        known.state is not DisputeState.OPEN or event.state is DisputeState.OPEN
    ):
        return Decision(Disposition.DUPLICATE)
    record = DisputeRecord(event.dispute_id, event.amount.amount, event.state)
    others = tuple(d for d in base.disputes if d.dispute_id != event.dispute_id)
    updated = attrs.evolve(base, disputes=(*others, record), updated_at=now)
    settled, changes = _rebalance(current, updated)
    return _transition(current, settled, changes, Disposition.APPLIED)


def _placeholder(payment_intent_id: str, now: datetime) -> Purchase:
    return Purchase(payment_intent_id, None, None, 0, None, now, now)


def _rebalance(
    current: Purchase | None, purchase: Purchase
) -> tuple[Purchase, tuple[LedgerChange, ...]]:
    """Bring the take-backs in line with the refund and dispute facts."""
    refund_target, held_target = _takeback_targets(purchase)
    changes = []
    version = _next_version(current)
    pi = purchase.payment_intent_id
    refund_delta = refund_target - purchase.tokens_refunded
    held_delta = held_target - purchase.tokens_held
    if refund_delta and purchase.user_id is not None:
        changes.append(
            LedgerChange(
                key=f"refund:{pi}:{version}",
                user_id=purchase.user_id,
                kind=EntryKind.REFUND,
                tokens=-refund_delta,
                payment_intent_id=pi,
                reason=f"refund of {purchase.amount_refunded} minor units",
            )
        )
    if held_delta and purchase.user_id is not None:
        changes.append(
            LedgerChange(
                key=f"dispute:{pi}:{version}",
                user_id=purchase.user_id,
                kind=EntryKind.DISPUTE,
                tokens=-held_delta,
                payment_intent_id=pi,
                reason="dispute hold" if held_delta > 0 else "dispute released",
            )
        )
    settled = attrs.evolve(purchase, tokens_refunded=refund_target, tokens_held=held_target)
    # Releases first: a take-back settled against a balance that a release in the
    # same transition is about to raise would record a shortfall that is not real.
    changes.sort(key=lambda change: change.tokens < 0)
    return settled, tuple(changes)


def _takeback_targets(purchase: Purchase) -> tuple[int, int]:
    """Tokens to take back for refunds and to hold for disputes, never above the credit."""
    credited = purchase.tokens_credited
    if credited == 0 or purchase.price is None:
        return 0, 0
    paid = purchase.price.amount
    refund = credited * min(purchase.amount_refunded, paid) // paid
    disputed = sum(d.amount for d in purchase.disputes if d.state is not DisputeState.WON)
    held = min(credited - refund, credited * min(disputed, paid) // paid)
    return refund, held


def _next_version(current: Purchase | None) -> int:
    return 1 if current is None else current.version + 1


def _transition(
    current: Purchase | None,
    purchase: Purchase,
    changes: tuple[LedgerChange, ...],
    disposition: Disposition,
    reason: str = "",
) -> Decision:
    stored = attrs.evolve(purchase, version=_next_version(current))
    expected = None if current is None else current.version
    return Decision(disposition, PurchaseTransition(expected, stored, changes), reason)


def _describe(money: Money) -> str:
    return f"{money.amount} {money.currency}"
