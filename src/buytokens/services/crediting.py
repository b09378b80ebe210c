"""Applying payment events and admin adjustments to balances."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.checkout import Delivery, ReceivedEvent
from buytokens.domain.crediting import Decision, Disposition, approve_review, decide, taken_back
from buytokens.domain.errors import (
    ChangeNotApplied,
    ConcurrentUpdate,
    OutcomeUnknown,
    StoreUnavailable,
)
from buytokens.domain.events import PaymentEvent
from buytokens.domain.ledger import LedgerEntry, admin_adjustment, check_user_id
from buytokens.domain.purchases import Purchase
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock, IdSource

# Each retry re-reads the purchase; contention on one intent is a handful of
# concurrent deliveries at most, so a conflict that persists this long is a fault.
MAX_ATTEMPTS = 50


@attrs.frozen
class Applied:
    """What applying one event did: the decision, the stored purchase and new ledger entries."""

    disposition: Disposition
    purchase: Purchase | None
    entries: tuple[LedgerEntry, ...] = ()
    reason: str = ""


def apply_payment_event(
    event: PaymentEvent,
    store: BalanceRepository,
    catalogue: Catalogue,
    clock: Clock,
    *,
    received: ReceivedEvent | None = None,
) -> Applied:
    """Apply ``event`` exactly once, however often and concurrently it is delivered.

    With ``received``, the provider event it came in, the delivery is journalled
    in the store write of its outcome: with the purchase's change, or on its own
    when it changed nothing.
    """

    def decide_now(current: Purchase | None, taken: int) -> Decision:
        return decide(current, event, catalogue, clock.now(), taken_back=taken)

    def delivered(disposition: Disposition) -> Delivery | None:
        return None if received is None else Delivery.of(received, disposition.value, clock.now())

    return _settle(event.payment_intent_id, store, decide_now, delivered)


def approve_purchase(
    payment_intent_id: str, reason: str, store: BalanceRepository, clock: Clock
) -> Applied:
    """Credit a purchase flagged for review, once, with the operator's reason on the ledger."""
    return _settle(
        payment_intent_id,
        store,
        lambda current, taken: approve_review(current, reason, clock.now(), taken_back=taken),
    )


def _settle(
    payment_intent_id: str,
    store: BalanceRepository,
    decide_on: Callable[[Purchase | None, int], Decision],
    delivered: Callable[[Disposition], Delivery | None] = lambda _: None,
) -> Applied:
    """Read the purchase and what its take-backs took, decide, and commit at the version read.

    A concurrent writer makes the commit fail as a whole, and the loop decides
    again on the fresh state, where an event already applied decides nothing.
    """
    for _ in range(MAX_ATTEMPTS):
        current = store.get_purchase(payment_intent_id)
        decision = decide_on(current, _taken_back(store, current))
        delivery = delivered(decision.disposition)
        if decision.transition is None:
            if delivery is not None:
                store.record_delivery(delivery)
            return Applied(decision.disposition, current, reason=decision.reason)
        try:
            entries = store.commit(attrs.evolve(decision.transition, delivery=delivery))
        except ConcurrentUpdate:
            continue
        return Applied(decision.disposition, decision.transition.purchase, entries, decision.reason)
    raise ConcurrentUpdate(
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


def grant_tokens(
    user_id: str,
    tokens: int,
    reason: str,
    store: BalanceRepository,
    ids: IdSource,
    *,
    key: str | None = None,
) -> LedgerEntry:
    """Add (or, negative, deduct) tokens by hand, on the ledger with ``reason``.

    A deduction never takes a balance below zero; what it could not take is the
    entry's shortfall. Passing the same ``key`` twice grants once.

    The answer is the outcome: the entry when the grant is applied;
    ``ChangeNotApplied`` when it certainly is not and never will be (asking
    again is safe); ``OutcomeUnknown`` when the store could not tell, whose
    ``retry_key`` (the caller's ``key``, or the one made up for this call)
    finishes the grant exactly once when passed as ``key``.
    """
    # The balance ceiling is checked on a read before the write: two grants racing
    # past it overshoot by at most MAX_TOKENS, far inside a 64-bit integer.
    user_id = check_user_id(user_id)
    balance = store.balance(user_id)
    key = key or ids.new_id()
    change = admin_adjustment(user_id, tokens, reason, balance, key=key)
    try:
        return store.record_adjustment(change)
    except ChangeNotApplied as exc:
        raise ChangeNotApplied(
            f"nothing was granted to {change.user_id}: {exc.message}; asking again is safe"
        ) from exc
    except StoreUnavailable as exc:
        raise OutcomeUnknown(
            f"the grant of {tokens:+,} tokens to {change.user_id} is not confirmed "
            f"({exc.message}); it takes effect at most once: repeat it with --key {key} to "
            "finish it, never without; unless repeated it is cancelled within minutes if it "
            f"has not reached the balance (`buytokens history {change.user_id}` shows it)",
            retry_key=key,
        ) from exc
