"""Crediting: applying a payment event exactly once, and the settle loop every change takes.

Calling style (see ``buytokens.services``): ``apply_payment_event(deps, event)``
with ``deps`` a ``CreditingDependencies``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import attrs

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.checkout import Delivery, ReceivedEvent
from buytokens.domain.crediting import (
    Decision,
    Disposition,
    PurchaseTransition,
    decide,
    taken_back,
)
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.events import AttemptOutcome, PaymentAttempted, PaymentEvent, PaymentSucceeded
from buytokens.domain.ledger import LedgerEntry
from buytokens.domain.promo_uses import PaymentOutcome
from buytokens.domain.promotions import normal_promo_code
from buytokens.domain.purchases import Purchase
from buytokens.ports.balances import AwaitableTransactions, BalanceRepository
from buytokens.ports.clock import Clock
from buytokens.ports.promos import PromoCodes
from buytokens.services.gifts import GiftCodes, index_gift
from buytokens.services.promos import count_payment

# Each retry re-reads the purchase; contention on one intent is a handful of
# concurrent deliveries at most, so a conflict that persists this long is a fault.
MAX_ATTEMPTS = 50


@attrs.frozen
class CreditingDependencies:
    """What applying a payment event needs: the store, the catalogue that prices it, the clock."""

    store: BalanceRepository
    catalogue: Catalogue
    clock: Clock
    gifts: GiftCodes | None = None
    """Where a paid gift's code is indexed, for gift intents this store never saw."""
    promos: PromoCodes | None = None
    """Where promo code uses are counted (paid) and released (failed or canceled)."""


@attrs.frozen
class Applied:
    """What applying one event did: the decision, the stored purchase and new ledger entries."""

    disposition: Disposition
    purchase: Purchase | None
    entries: tuple[LedgerEntry, ...] = ()
    reason: str = ""


def apply_payment_event(
    deps: CreditingDependencies,
    event: PaymentEvent,
    *,
    received: ReceivedEvent | None = None,
) -> Applied:
    """Apply ``event`` exactly once, however often and concurrently it is delivered.

    With ``received``, the provider event it came in, the delivery is journalled
    in the store write of its outcome: with the purchase's change, or on its own
    when it changed nothing.
    """
    refusal = _prepare(deps, event)
    return settle(deps.store, event.payment_intent_id, *_deciding(deps, event, received, refusal))


async def apply_payment_event_awaiting(
    deps: CreditingDependencies,
    store: AwaitableTransactions,
    event: PaymentEvent,
    *,
    received: ReceivedEvent | None = None,
) -> Applied:
    """``apply_payment_event`` for an event loop, on a store that reads, decides and
    writes in one awaitable transaction (``store`` is ``deps.store`` seen as one)."""
    if _needs_preparation(deps, event):
        # A gift's index and a promo code's use are writes of their own, made before
        # the purchase's: they block, so they and the rest run off the event loop.
        return await asyncio.to_thread(apply_payment_event, deps, event, received=received)
    return await settle_awaiting(
        store, event.payment_intent_id, *_deciding(deps, event, received, None)
    )


def _needs_preparation(deps: CreditingDependencies, event: PaymentEvent) -> bool:
    if isinstance(event, PaymentSucceeded) and event.gift and deps.gifts is not None:
        return True
    return (
        deps.promos is not None
        and isinstance(event, PaymentSucceeded | PaymentAttempted)
        and normal_promo_code(event.promo_code) is not None
    )


def _prepare(deps: CreditingDependencies, event: PaymentEvent) -> str | None:
    """The writes a payment needs before its purchase's: a gift's index, a promo use."""
    if isinstance(event, PaymentSucceeded) and event.gift:
        _index_gift(deps, event)
    return _promo_use(deps, event)


def _deciding(
    deps: CreditingDependencies,
    event: PaymentEvent,
    received: ReceivedEvent | None,
    refusal: str | None,
) -> tuple[Callable[[Purchase | None, int], Decision], Callable[[Disposition], Delivery | None]]:
    def decide_now(current: Purchase | None, taken: int) -> Decision:
        return decide(
            current,
            event,
            deps.catalogue,
            deps.clock.now(),
            taken_back=taken,
            promo_refusal=refusal,
        )

    def delivered(disposition: Disposition) -> Delivery | None:
        if received is None:
            return None
        return Delivery.of(received, disposition.value, deps.clock.now())

    return decide_now, delivered


def _nothing_delivered(_: Disposition) -> Delivery | None:
    return None


def _promo_use(deps: CreditingDependencies, event: PaymentEvent) -> str | None:
    """Count a succeeded payment's promo code use, or release a failed or canceled one's.

    Runs before the purchase is written, so a crash in between leaves the use
    counted and the redelivery finds it counted already. Returns why the use could
    not be counted (the code's limits were full), which sends the purchase to review.
    """
    if deps.promos is None or not isinstance(event, PaymentSucceeded | PaymentAttempted):
        return None
    code = normal_promo_code(event.promo_code)
    if code is None:
        return None
    checkout_id = event.purchase_id or event.payment_intent_id
    if isinstance(event, PaymentAttempted):
        if event.outcome in (AttemptOutcome.FAILED, AttemptOutcome.CANCELED):
            deps.promos.release(checkout_id)
        return None
    current = deps.store.get_purchase(event.payment_intent_id)
    if current is not None and current.succeeded:
        return None  # a redelivery: the first delivery counted it
    user_id = (current.user_id if current is not None else None) or event.user_id
    if user_id is None:
        return None  # flagged for review for its missing metadata
    decision = count_payment(
        deps.promos, code, user_id, checkout_id, event.payment_intent_id, deps.clock.now()
    )
    return decision.reason if decision.outcome is PaymentOutcome.OVER_LIMIT else None


def _index_gift(deps: CreditingDependencies, event: PaymentSucceeded) -> None:
    """Index the gift's code before its purchase is written: its checkout did so unless
    another instance, or this one before a restore, created the intent."""
    package = deps.catalogue.find(event.package_id) if event.package_id else None
    if deps.gifts is None or event.user_id is None or package is None:
        return  # such a payment is flagged for review, or cannot be redeemed here
    index_gift(deps.gifts, event.payment_intent_id, event.user_id, package.tokens, deps.clock.now())


def settle(
    store: BalanceRepository,
    payment_intent_id: str,
    decide_on: Callable[[Purchase | None, int], Decision],
    delivered: Callable[[Disposition], Delivery | None] = _nothing_delivered,
) -> Applied:
    """Read the purchase and what its take-backs took, decide, and commit at the version read.

    A concurrent writer makes the commit fail as a whole, and the loop decides
    again on the fresh state, where an event already applied decides nothing.
    """
    for _ in range(MAX_ATTEMPTS):
        try:
            return settle_once(store, payment_intent_id, decide_on, delivered)
        except ConcurrentUpdate:
            continue
    raise _kept_changing(payment_intent_id)


async def settle_awaiting(
    store: AwaitableTransactions,
    payment_intent_id: str,
    decide_on: Callable[[Purchase | None, int], Decision],
    delivered: Callable[[Disposition], Delivery | None] = _nothing_delivered,
) -> Applied:
    """``settle`` with the read, the decision and the commit in one awaited transaction.

    Nothing else writes meanwhile, so a conflict can only come from another
    process on the same store; then the whole attempt is undone and taken again.
    """

    def once(tx: BalanceRepository) -> Applied:
        return settle_once(tx, payment_intent_id, decide_on, delivered)

    for _ in range(MAX_ATTEMPTS):
        try:
            return await store.atomically(once)
        except ConcurrentUpdate:
            continue
    raise _kept_changing(payment_intent_id)


def settle_once(
    store: BalanceRepository,
    payment_intent_id: str,
    decide_on: Callable[[Purchase | None, int], Decision],
    delivered: Callable[[Disposition], Delivery | None] = _nothing_delivered,
) -> Applied:
    """One attempt of ``settle``: raises ``ConcurrentUpdate`` when the purchase moved meanwhile."""
    current = store.get_purchase(payment_intent_id)
    decision = decide_on(current, _taken_back(store, current))
    delivery = delivered(decision.disposition)
    if decision.transition is None:
        if delivery is not None:
            store.record_delivery(delivery)
        return Applied(decision.disposition, current, reason=decision.reason)
    transition = decision.transition
    if delivery is not None:
        transition = PurchaseTransition(
            transition.expected_version, transition.purchase, transition.changes, delivery
        )
    entries = store.commit(transition)
    return Applied(decision.disposition, transition.purchase, entries, decision.reason)


def _kept_changing(payment_intent_id: str) -> ConcurrentUpdate:
    return ConcurrentUpdate(
        f"payment intent {payment_intent_id} kept changing under "
        f"{MAX_ATTEMPTS} attempts; retry later"
    )


def _taken_back(store: BalanceRepository, current: Purchase | None) -> int:
    """What the purchase's take-backs took from the balance, net of give-backs.

    Read after the purchase: entries of a later transition than the version read
    can only belong to a commit that makes ours fail at that version. A purchase
    that never reached a take-back target took nothing, and costs no read.
    """
    if current is None or current.tokens_taken_back == 0:
        return 0
    return taken_back(store.purchase_ledger(current.payment_intent_id))
