"""MongoDB store in LibreChat's own collections, exactly once without transactions.

LibreChat reads a user's credits from ``balances`` (``user``, ``tokenCredits``)
and lists changes in ``transactions``. This adapter writes both in LibreChat's
shape, so LibreChat sees every credit as soon as it lands, and keeps purchases
in a collection of its own:

``buytokens_purchases``
    One document per payment intent (``_id``), the purchase facts, a ``version``
    and ``pending``: the ledger changes of the last transition not yet finished.
``transactions``
    One document per ledger change: LibreChat's fields (``user``,
    ``tokenType: "credits"``, ``context``, ``rawAmount`` and ``tokenValue`` = the
    applied delta, ``createdAt``, ``updatedAt``) plus a ``buytokens`` sub-document
    (entry ``key``, ``state`` pending/applied/cancelled, ``requested``, ``applied``,
    ``shortfall``, ``balanceAfter``, ``seq``, ``paymentIntentId``, ``reason``).
    A unique sparse index on ``buytokens.key`` makes every key exist once; the
    index ignores LibreChat's own transactions, which have no such field.
``balances``
    LibreChat's one document per user. This adapter adds a ``buytokens``
    sub-document: ``seq``, a counter of our applications, and ``inflight``, a
    list of at most a few markers ``{key, entry, applied, shortfall, balanceAfter,
    seq}`` for changes applied to ``tokenCredits`` (or, with ``cancelled: true``,
    cancelled) whose entry is not marked yet.
    Nothing in it grows with the number of purchases.

The write sequence and its crash matrix are in ``writes``, the recovery pass in
``recovery``, the one-balance-per-user index in ``indexes``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import timedelta

from pymongo.errors import DuplicateKeyError

from buytokens.adapters.mongo.codec import (
    APPLIED,
    entry_from_doc,
    inflight,
    purchase_doc,
    purchase_from_doc,
    token_credits,
)
from buytokens.adapters.mongo.connection import MongoDatabase, translated_errors
from buytokens.adapters.mongo.indexes import ensure_indexes, find_duplicate_balances
from buytokens.adapters.mongo.journal import record_delivery
from buytokens.adapters.mongo.recovery import ADJUSTMENT_GRACE, RecoveryReport, recover
from buytokens.adapters.mongo.writes import MongoWrites
from buytokens.domain.checkout import Delivery
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import ChangeNotApplied, StoreCorrupted, StoreUnavailable
from buytokens.domain.ledger import LedgerChange, LedgerEntry
from buytokens.domain.purchases import Purchase
from buytokens.domain.users import canonical_user_id
from buytokens.ports.clock import Clock
from buytokens.ports.diagnostics import DuplicateBalance

# How long one adjustment keeps retrying a failing store before it gives up and cancels.
ADJUSTMENT_PATIENCE = 15.0
# How often an adjustment starts again after a recovery pass cancelled it under it.
_MAX_ADJUSTMENT_RESTARTS = 5


class MongoBalanceRepository:
    """A BalanceRepository in LibreChat's MongoDB, exactly once on a standalone mongod.

    See ``writes`` for the write sequence and its recovery. The constructor
    creates the indexes (``ensure_indexes``); call ``recover()`` at start-up and
    periodically to finish work a crash left behind.
    """

    def __init__(
        self,
        database: MongoDatabase,
        clock: Clock,
        *,
        adjustment_patience: float = ADJUSTMENT_PATIENCE,
        adjustment_grace: timedelta = ADJUSTMENT_GRACE,
    ) -> None:
        self._adjustment_patience = adjustment_patience
        self._adjustment_grace = adjustment_grace
        self._database = database
        self._writes = MongoWrites(database, clock)
        self.ensure_indexes()

    @property
    def database(self) -> MongoDatabase:
        """The database this store keeps its collections in."""
        return self._database

    # -- start-up and operations ------------------------------------------------

    def ensure_indexes(self) -> tuple[DuplicateBalance, ...]:
        """Create the indexes the write sequence relies on; return users with duplicate balances.

        See ``indexes.ensure_indexes``.
        """
        with translated_errors():
            return ensure_indexes(self._database)

    def duplicate_balances(self) -> tuple[DuplicateBalance, ...]:
        """Every user with more than one balance document (empty when the data is sound)."""
        with translated_errors():
            return find_duplicate_balances(self._writes.balances)

    def recover(self) -> RecoveryReport:
        """Finish every purchase, entry and marker a crash left unfinished; idempotent.

        Safe to run while other writers are active: finishing the same work twice
        applies it once.
        """
        with translated_errors():
            return recover(self._writes, self._adjustment_grace)

    # -- BalanceRepository --------------------------------------------------------

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        """The stored purchase, after finishing any changes its last transition left pending."""
        with translated_errors():
            doc = self._writes.purchases.find_one({"_id": payment_intent_id})
            if doc is None:
                return None
            if doc.get("pending"):
                self._writes.finish_purchase(doc)
        return purchase_from_doc(doc)

    def add_purchase(self, purchase: Purchase) -> Purchase:
        """Store a new purchase unless one with its intent id exists; return the stored one."""
        with translated_errors():
            try:
                self._writes.purchases.insert_one(purchase_doc(purchase, ()))
            except DuplicateKeyError:
                stored = self.get_purchase(purchase.payment_intent_id)
                if stored is None:
                    raise StoreCorrupted(
                        f"purchase {purchase.payment_intent_id} both exists and does not"
                    ) from None
                return stored
        return purchase

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        """Store ``transition`` (steps 1-3 of the module documentation) and return its entries.

        Raises ``ConcurrentUpdate`` when the stored version differs or a change's
        key is already on the ledger (nothing written), ``StoreCorrupted`` when a
        change's user has duplicate balance documents (nothing written), and
        ``StoreUnavailable`` when the store fails, after which the transition may
        be stored and is finished by the next ``get_purchase`` or ``recover()``.
        """
        with translated_errors():
            return self._writes.commit(transition)

    def record_delivery(self, delivery: Delivery) -> None:
        """Count a delivery that changed nothing in the journal collection."""
        with translated_errors():
            record_delivery(self._writes.events, delivery)

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        """Apply a change with no purchase behind it, once per key (steps 2a-2d).

        Answers only with the outcome: the entry once applied, or ``ChangeNotApplied``
        once it is certain the change never reached the balance and never will
        (the pending entry is cancelled). A failing store is retried for
        ``adjustment_patience`` seconds; ``StoreUnavailable`` means the store could
        not say either way, and a call with the same key then finishes it, once.
        Nothing else ever applies a pending adjustment: ``recover()`` only cancels
        those its caller abandoned, unless the balance already shows them.

        A second call with the same key returns the entry stored the first time.
        Raises ``StoreCorrupted`` when the user has duplicate balance documents.
        """
        with translated_errors():
            self._writes.balance_document(change.user_id)
        deadline = time.monotonic() + self._adjustment_patience
        pause = 0.05
        failure: StoreUnavailable | None = None
        restarts = 0
        while restarts < _MAX_ADJUSTMENT_RESTARTS:
            try:
                with translated_errors():
                    entry = self._writes.start_and_settle(change)
            except StoreUnavailable as exc:
                failure = exc
                if time.monotonic() >= deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 4, 2.0)
                continue
            if entry["buytokens"]["state"] == APPLIED:
                return entry_from_doc(entry)
            # A recovery pass took this entry for abandoned and cancelled it, which
            # freed its key: this call is still here, so it starts again.
            failure = None
            restarts += 1
        return self._cancel_adjustment(change, failure)

    def _cancel_adjustment(
        self, change: LedgerChange, failure: StoreUnavailable | None
    ) -> LedgerEntry:
        """Settle the outcome of an adjustment that could not be finished: applied, or never."""
        with translated_errors():
            entry = self._writes.transactions.find_one({"buytokens.key": change.key})
            if entry is not None:
                entry = self._writes.settle(entry, cancel=True)
        if entry is not None and entry["buytokens"]["state"] == APPLIED:
            return entry_from_doc(entry)
        cause = failure.message if failure is not None else "it was cancelled while it ran"
        raise ChangeNotApplied(
            f"{change.key} for user {change.user_id} was not applied and is cancelled: {cause}"
        ) from failure

    def balance(self, user_id: str) -> int:
        """The user's token credits (a fractional LibreChat balance rounded down); 0 if unseen.

        Purchases of the user whose changes are still pending are finished first,
        so a purchase that reads as succeeded has its tokens in this balance.
        """
        user_id = canonical_user_id(user_id)
        with translated_errors():
            self._writes.finish_pending_purchases(user_id)
            doc = self._writes.balance_document(user_id)
        return 0 if doc is None else math.floor(token_credits(doc))

    def purchases(self, user_id: str, limit: int = 100) -> Sequence[Purchase]:
        """The user's purchases, newest first, at most ``limit``; pending changes finished first."""
        if limit <= 0:
            return []  # pymongo reads a limit of 0 as "no limit"
        user_id = canonical_user_id(user_id)
        with translated_errors():
            self._writes.finish_pending_purchases(user_id)
            docs = list(
                self._writes.purchases.find(
                    {"userId": user_id}, sort=[("createdAt", -1), ("_id", -1)], limit=limit
                )
            )
        return [purchase_from_doc(doc) for doc in docs]

    def flagged_purchases(self, limit: int = 100) -> Sequence[Purchase]:
        """Purchases awaiting review, longest waiting first, at most ``limit``."""
        if limit <= 0:
            return []
        with translated_errors():
            docs = list(
                self._writes.purchases.find(
                    {"reviewReason": {"$ne": None}},
                    sort=[("updatedAt", 1), ("_id", 1)],
                    limit=limit,
                )
            )
        return [purchase_from_doc(doc) for doc in docs]

    def ledger(self, user_id: str, limit: int = 100) -> Sequence[LedgerEntry]:
        """The user's applied ledger entries, newest first, at most ``limit``.

        Markers left on the user's balance are finished first, so the entries
        listed explain the balance ``balance()`` reports.
        """
        if limit <= 0:
            return []
        user_id = canonical_user_id(user_id)
        with translated_errors():
            self._writes.finish_pending_purchases(user_id)
            doc = self._writes.balance_document(user_id)
            if doc is not None:
                for marker in inflight(doc):
                    self._writes.finish_marker(doc["_id"], marker)
            docs = list(
                self._writes.transactions.find(
                    {"buytokens.userId": user_id, "buytokens.state": APPLIED},
                    sort=[("buytokens.seq", -1), ("_id", -1)],
                    limit=limit,
                )
            )
        return [entry_from_doc(doc) for doc in docs]

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        """The purchase's applied ledger entries, oldest first (see the port)."""
        with translated_errors():
            docs = list(
                self._writes.transactions.find(
                    {"buytokens.paymentIntentId": payment_intent_id, "buytokens.state": APPLIED},
                    sort=[("_id", 1)],
                )
            )
        return [entry_from_doc(doc) for doc in docs]
