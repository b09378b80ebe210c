"""The store of purchases, ledger entries and balances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.ledger import LedgerChange, LedgerEntry
from buytokens.domain.purchases import Purchase


class BalanceRepository(Protocol):
    """Keeps each user's token balance, the ledger that explains it, and purchases.

    Every method raises ``StoreUnavailable`` when the store cannot be reached or
    cannot confirm that a write is durable; callers may retry those. Any spelling
    of a user id names the user its canonical form names (``canonical_user_id``).
    """

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        """The stored purchase for this payment intent, or None."""
        ...

    def add_purchase(self, purchase: Purchase) -> Purchase:
        """Store a new purchase unless one with its intent id exists; return the stored one."""
        ...

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        """Store ``transition`` durably and atomically, returning the ledger entries made.

        The purchase is written only if the stored version equals
        ``transition.expected_version`` (None: no purchase stored yet); otherwise
        nothing is written and ``ConcurrentUpdate`` is raised. Each change is settled
        against the balance at that moment (see ``settle``), so no balance goes below
        zero. A change whose key is already on the ledger is never applied again;
        meeting one means the transition was already stored, and raises
        ``ConcurrentUpdate`` too. A transition's ``delivery`` is recorded in the
        event journal of the same database as ``EventJournal.record`` would, in the
        same transaction where the store has transactions.
        """
        ...

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        """Apply a change with no purchase behind it (an admin grant); once per key.

        A second call with the same key returns the entry stored the first time.
        Returns only once the change is applied. Raises ``ChangeNotApplied`` when
        it is certain the change is not applied and never will be without another
        call; ``StoreUnavailable`` leaves that open, and a call with the same key
        then finishes it, once.
        """
        ...

    def balance(self, user_id: str) -> int:
        """The user's token credits; 0 for a user never seen."""
        ...

    def purchases(self, user_id: str, limit: int = 100) -> Sequence[Purchase]:
        """The user's purchases, newest first, at most ``limit``."""
        ...

    def ledger(self, user_id: str, limit: int = 100) -> Sequence[LedgerEntry]:
        """The user's ledger entries, newest first, at most ``limit``."""
        ...

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        """The applied ledger entries of one purchase, oldest first.

        Read after ``get_purchase``, they include every change of the transitions
        up to the version it returned (a store without transactions finishes a
        transition's changes before that read returns).
        """
        ...

    def flagged_purchases(self, limit: int = 100) -> Sequence[Purchase]:
        """Purchases awaiting an operator's review, longest waiting first, at most ``limit``."""
        ...


@runtime_checkable
class UnfinishedWork(Protocol):
    """A store whose writes can be left half done (no transactions) and finished later."""

    def recover(self) -> object:
        """Finish (or cancel, where that is the rule) whatever interrupted writes left; idempotent.

        Cheap when there is nothing to finish: safe to call periodically.
        """
        ...
