"""The store of purchases, ledger entries and balances: its write side and its read side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from buytokens.domain.checkout import Delivery
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.ledger import LedgerChange, LedgerEntry
from buytokens.domain.purchases import Purchase

T = TypeVar("T")


class PurchaseUnitOfWork(Protocol):
    """Every write to the balances: each call one unit, stored whole or not at all.

    A provider event's delivery reaches the event journal only through this port,
    in the same unit as what it changed: ``commit`` for a delivery that changed a
    purchase, ``record_delivery`` for one that changed nothing.

    Every method raises ``StoreUnavailable`` when the store cannot be reached or
    cannot confirm that a write is durable; callers may retry those. Any spelling
    of a user id names the user its canonical form names (``canonical_user_id``).
    """

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
        ``ConcurrentUpdate`` too. The transition's ``delivery``, when it came from a
        provider event, is counted in the event journal with it: in the same
        transaction where the store has transactions, last where it has not (a crash
        before it loses only that audit line, and the redelivery adds one). A
        refused transition journals nothing.
        """
        ...

    def record_delivery(self, delivery: Delivery) -> None:
        """Count a delivery that changed nothing (a duplicate, an ignored event) in the journal.

        Repeated deliveries of one event count up on the same record, which keeps
        the latest disposition (see ``EventJournal.deliveries``).
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


class BalanceQueries(Protocol):
    """Reads of purchases, balances and the ledger; they never change what they report.

    A store without transactions may finish a write a crash interrupted before it
    answers, so that what it reports is consistent. Every method raises
    ``StoreUnavailable`` when the store cannot be reached, and accepts any
    spelling of a user id (``canonical_user_id``).
    """

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        """The stored purchase for this payment intent, or None."""
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


class BalanceRepository(PurchaseUnitOfWork, BalanceQueries, Protocol):
    """One store of purchases, ledger and balances: its unit of work and its queries.

    The use cases that decide on what they read (crediting) need both sides of
    the same store; the others may ask for one side only.
    """


@runtime_checkable
class UnfinishedWork(Protocol):
    """A store whose writes can be left half done (no transactions) and finished later."""

    def recover(self) -> object:
        """Finish (or cancel, where that is the rule) whatever interrupted writes left; idempotent.

        Cheap when there is nothing to finish: safe to call periodically.
        """
        ...


@runtime_checkable
class AwaitableTransactions(Protocol):
    """A store that runs a whole read-decide-write on itself as one transaction, awaitably.

    An event loop awaits the durable commit instead of parking a thread on it;
    and since nothing else writes while ``work`` runs, what it read is still
    true when its writes commit.
    """

    async def atomically(self, work: Callable[[BalanceRepository], T]) -> T:
        """Run ``work`` against the store inside one durable write transaction.

        Returns what ``work`` returned once the transaction is on disk. Whatever
        ``work`` raises comes back with all of its writes undone. ``work`` runs
        on another thread and must not block on anything but the store.
        """
        ...
