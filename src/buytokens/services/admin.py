"""What an operator does by hand: grant (or deduct) tokens, list and approve flagged purchases.

Calling style (see ``buytokens.services``): ``grant_tokens(deps, user, tokens,
reason)`` with a ``GrantDependencies``, ``approve_purchase(deps, intent, reason)``
with an ``ApprovalDependencies``, ``purchases_to_review(store)`` with the store alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from buytokens.domain.crediting import approve_review
from buytokens.domain.errors import ChangeNotApplied, OutcomeUnknown, StoreUnavailable
from buytokens.domain.ledger import LedgerEntry, admin_adjustment, check_user_id
from buytokens.domain.purchases import Purchase
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock, IdSource
from buytokens.services.crediting import Applied, settle


@attrs.frozen
class GrantDependencies:
    """What a grant needs: the store, and ids for grants made without a key."""

    store: BalanceRepository
    ids: IdSource


@attrs.frozen
class ApprovalDependencies:
    """What approving a flagged purchase needs: the store and the clock."""

    store: BalanceRepository
    clock: Clock


def grant_tokens(
    deps: GrantDependencies,
    user_id: str,
    tokens: int,
    reason: str,
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
    balance = deps.store.balance(user_id)
    key = key or deps.ids.new_id()
    change = admin_adjustment(user_id, tokens, reason, balance, key=key)
    try:
        return deps.store.record_adjustment(change)
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


def purchases_to_review(store: BalanceRepository, limit: int = 100) -> Sequence[Purchase]:
    """Purchases awaiting an operator's review, longest waiting first, at most ``limit``."""
    return store.flagged_purchases(limit)


def approve_purchase(deps: ApprovalDependencies, payment_intent_id: str, reason: str) -> Applied:
    """Credit a purchase flagged for review, once, with the operator's reason on the ledger."""
    return settle(
        deps.store,
        payment_intent_id,
        lambda current, taken: approve_review(current, reason, deps.clock.now(), taken_back=taken),
    )
