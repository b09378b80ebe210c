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

A standalone mongod has no multi-document transactions, so a commit is a
sequence of single-document writes, each conditional, each safe to repeat:

1. **Purchase CAS.** Insert the purchase (expected version None; a duplicate key
   means someone was first: ``ConcurrentUpdate``) or update it filtered on
   ``version`` and on an empty ``pending`` list, storing the transition's
   changes in ``pending``. From here on the transition is durable: it only
   remains to be finished.
2. For each change, in order:

   a. **Entry insert** in state ``pending``. A duplicate key means the change was
      already started; the stored entry is the one that counts.
   b. **Balance CAS.** Read the balance document, *then* the entry; if the entry
      is still pending, settle the change against the ``tokenCredits`` just read
      (``settle``: never below zero) and, in one update filtered on that exact
      ``tokenCredits``, on ``buytokens.seq`` and on the key not being in flight,
      set the new ``tokenCredits``, increment ``seq`` and push the marker. A
      concurrent LibreChat ``$inc`` or another of our writers makes the filter
      miss: read again and retry. Reading the balance before the entry is what
      makes this at most once: a writer that applied the change either left its
      marker (seen), or already marked the entry applied (seen), or did so after
      our balance read (its ``seq`` increment makes our filter miss).
   c. **Entry applied**: copy the marker's numbers into the entry.
   d. **Marker pull** from the balance.

3. **Clear** the purchase's ``pending`` list, filtered on its version.

What a crash (or lost acknowledgement) at each point leaves, and who finishes it:

* before 1: nothing was written; Stripe's redelivery decides again.
* after 1: the purchase shows the new version with ``pending`` changes. A
  redelivered event decides nothing against that version, so ``get_purchase``
  (and ``commit``, ``recover``) first finishes ``pending``: steps 2 and 3.
* after 2a: a pending entry; finishing re-inserts (duplicate, ignored) and
  settles it through 2b.
* after 2b: the balance holds the change and its marker; finishing finds the
  marker and goes on with 2c (the marker's numbers, never a second settlement).
* after 2c: finishing finds the marker, sees the entry applied, pulls it.
* after 2d: finishing sees the entry applied and skips it.
* after 3: done.

``recover()`` runs the same finishing for every purchase with ``pending``
changes, every pending entry and every marker; it runs at start-up and, under
``serve``, periodically. Reads of a user's balance, purchases or ledger first
finish that user's pending purchases, so a purchase never reads as succeeded
before its tokens are in the balance.

**Adjustments** (``record_adjustment``, an admin grant: no purchase behind it)
use steps 2a-2d keyed by the change's key, with one difference: their caller
must learn the outcome, so nothing but a call for that key ever applies one.
The call retries a failing store for a while; if it still cannot finish, it
*cancels* the entry: a settlement through the same balance CAS (2b) that
applies nothing and pushes a marker saying ``cancelled``; finishing that marker
(2c) marks the entry cancelled and moves its key to ``cancelledKey``, freeing
the key for a new attempt. Step 2b's argument makes one applier and one
canceller of an entry exclusive: whichever CAS lands first decides. A pending
adjustment older than ``adjustment_grace`` lost its caller (who was told the
outcome is open and given the key); ``recover()`` cancels it, unless the
balance already shows it, in which case it finishes it. A pending adjustment is
never applied by a reader or by recovery.

Balances must be one per user, which a unique index on ``balances.user``
enforces. A database where some user already has several balance documents (a
race in code that ran before the index) cannot get that index: the adapter
logs an error naming each such user, the documents and how to merge them, and
keeps working for everybody else. For an affected user, every operation that
touches the balance (``commit`` of a transition with a change for that user,
``record_adjustment``, ``balance``, ``ledger``) raises ``StoreCorrupted``
before writing anything, since crediting one of the documents at random could
lose the tokens; Stripe keeps retrying the payment until an operator merges the
documents, and the next delivery credits it once. ``ensure_indexes()`` (run at
construction) creates the index once the data allows it.

User ids that are 24 hex digits are stored as ``ObjectId`` in ``user`` fields,
as LibreChat stores them; other ids are stored as strings. Everywhere else
(``userId`` fields) an id is in its canonical spelling (``canonical_user_id``:
lower-case hex for an ObjectId), and every method accepts any spelling; ids an
earlier version stored in upper case are rewritten at start-up.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
from bson import ObjectId
from bson.errors import BSONError
from pymongo import MongoClient
from pymongo.errors import (
    ConfigurationError as MongoConfigurationError,
)
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

from buytokens.domain.checkout import Delivery
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import (
    BuyTokensError,
    ChangeNotApplied,
    ConcurrentUpdate,
    ConfigurationError,
    StoreCorrupted,
    StoreUnavailable,
)
from buytokens.domain.events import AttemptOutcome, DisputeState
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry, settle
from buytokens.domain.money import Money
from buytokens.domain.purchases import DisputeRecord, Purchase
from buytokens.domain.users import canonical_user_id, is_object_id
from buytokens.ports.clock import Clock
from buytokens.ports.diagnostics import DuplicateBalance

_log = logging.getLogger(__name__)

Document = dict[str, Any]

PURCHASES = "buytokens_purchases"
BALANCES = "balances"
TRANSACTIONS = "transactions"
WEBHOOK_EVENTS = "buytokens_webhook_events"
DEFAULT_DATABASE = "LibreChat"  # LibreChat's default MONGO_URI names this database

_PENDING = "pending"
_APPLIED = "applied"
_CANCELLED = "cancelled"
# Markers normally live for the two writes between a balance CAS and its pull;
# the bound only matters if crashes leave some behind, and those are finished
# before every new application.
_MAX_INFLIGHT = 16
_MAX_BALANCE_ATTEMPTS = 200
_MAX_PURCHASE_ATTEMPTS = 5
# A 24-hex-digit id with an upper-case digit: stored by versions that kept ids as given.
_NON_CANONICAL_ID = {"$regex": "^(?=[0-9a-fA-F]{24}$).*[A-F]"}
# How long one adjustment keeps retrying a failing store before it gives up and cancels.
ADJUSTMENT_PATIENCE = 15.0
# A pending adjustment older than this has lost its caller: recovery cancels it.
ADJUSTMENT_GRACE = timedelta(minutes=5)
_CONTEXTS = {
    EntryKind.PURCHASE: "stripe_purchase",
    EntryKind.REFUND: "refund",
    EntryKind.DISPUTE: "dispute",
    EntryKind.ADMIN: "admin",
    EntryKind.REDEMPTION: "code_redemption",
}
_KINDS = {context: kind for kind, context in _CONTEXTS.items()}
_UNIQUE_BALANCE_INDEX = "buytokens_one_balance_per_user"
_INDEX_CONFLICT_CODES = frozenset({85, 86})  # IndexOptionsConflict, IndexKeySpecsConflict


class MongoDatabase(Protocol):
    """The part of a pymongo ``Database`` this adapter uses; ``connect_mongo`` returns one."""

    @property
    def name(self) -> str:
        """The database's name."""
        ...

    def get_collection(self, name: str) -> Any:
        """The named collection (a pymongo ``Collection`` or a stand-in with its methods)."""
        ...


@attrs.frozen
class RecoveryReport:
    """What one ``recover()`` pass finished."""

    purchases: int = 0
    entries: int = 0
    markers: int = 0
    cancelled: int = 0  # adjustments abandoned by their caller before they reached the balance

    @property
    def total(self) -> int:
        """Everything finished, 0 when the store was already consistent."""
        return self.purchases + self.entries + self.markers + self.cancelled


class MongoBalanceRepository:
    """A BalanceRepository in LibreChat's MongoDB, exactly once on a standalone mongod.

    See the module documentation for the write sequence and its recovery. The
    constructor creates the indexes (``ensure_indexes``); call ``recover()`` at
    start-up and periodically to finish work a crash left behind.
    """

    def __init__(
        self,
        database: MongoDatabase,
        clock: Clock,
        *,
        adjustment_patience: float = ADJUSTMENT_PATIENCE,
        adjustment_grace: timedelta = ADJUSTMENT_GRACE,
    ) -> None:
        self._clock = clock
        self._adjustment_patience = adjustment_patience
        self._adjustment_grace = adjustment_grace
        self._database = database
        self._purchases = database.get_collection(PURCHASES)
        self._balances = database.get_collection(BALANCES)
        self._transactions = database.get_collection(TRANSACTIONS)
        self._events = database.get_collection(WEBHOOK_EVENTS)
        self.ensure_indexes()

    @property
    def database(self) -> MongoDatabase:
        """The database this store keeps its collections in."""
        return self._database

    # -- start-up and operations ------------------------------------------------

    def ensure_indexes(self) -> tuple[DuplicateBalance, ...]:
        """Create the indexes the write sequence relies on; return users with duplicate balances.

        Creating an index that exists is a no-op. When some users already have
        several balance documents the unique index on ``balances.user`` cannot be
        built: each such user is logged at ERROR with how to merge, and returned.
        """
        with self._guard():
            self._purchases.create_index(
                [("userId", 1), ("createdAt", -1)], name="buytokens_purchases_by_user"
            )
            self._purchases.create_index(
                [("pendingSince", 1)], name="buytokens_purchases_pending", sparse=True
            )
            self._purchases.create_index(
                [("reviewReason", 1), ("updatedAt", 1)], name="buytokens_purchases_flagged"
            )
            self._transactions.create_index(
                [("buytokens.key", 1)], name="buytokens_entry_key", unique=True, sparse=True
            )
            self._transactions.create_index(
                [("buytokens.userId", 1), ("buytokens.seq", -1)],
                name="buytokens_ledger_by_user",
                sparse=True,
            )
            self._transactions.create_index(
                [("buytokens.state", 1)], name="buytokens_entry_state", sparse=True
            )
            self._transactions.create_index(
                [("buytokens.paymentIntentId", 1)], name="buytokens_ledger_by_intent", sparse=True
            )
            self._balances.create_index(
                [("buytokens.inflight.key", 1)], name="buytokens_inflight", sparse=True
            )
            self._canonicalise_user_ids()
            return self._ensure_unique_balances()

    def _canonicalise_user_ids(self) -> None:
        """Rewrite ObjectId-shaped user ids stored with upper-case digits in lower case.

        Earlier versions kept an id as spelled, so one LibreChat user (one balance
        document) could have purchases and ledger entries under several spellings.
        Both queries use an index on the field, and find nothing once done.
        """
        for collection, field in (
            (self._purchases, "userId"),
            (self._transactions, "buytokens.userId"),
        ):
            for doc in collection.find({field: _NON_CANONICAL_ID}, projection=[field]):
                stored = doc.get("userId") if field == "userId" else doc["buytokens"]["userId"]
                collection.update_one(
                    {"_id": doc["_id"], field: stored}, {"$set": {field: canonical_user_id(stored)}}
                )

    def _ensure_unique_balances(self) -> tuple[DuplicateBalance, ...]:
        if has_unique_user_index(self._balances):
            return ()
        duplicates = self.duplicate_balances()
        if not duplicates:
            try:
                # LibreChat's own index on ``user`` is not unique; MongoDB 5.0 and later
                # accept a unique index on the same key beside it.
                self._balances.create_index([("user", 1)], name=_UNIQUE_BALANCE_INDEX, unique=True)
            except DuplicateKeyError:
                duplicates = self.duplicate_balances()  # written while we looked
            except OperationFailure as exc:
                if exc.code not in _INDEX_CONFLICT_CODES:
                    raise
                _log.error(
                    "balances.user has no unique index and this MongoDB refuses a second "
                    "index on the same key (%s); drop the non-unique index on balances.user "
                    "and restart buytokens, or upgrade MongoDB to 5.0 or later",
                    exc,
                )
                return ()
        for duplicate in duplicates:
            _log.error("duplicate LibreChat balances: %s", duplicate.describe())
        return duplicates

    def duplicate_balances(self) -> tuple[DuplicateBalance, ...]:
        """Every user with more than one balance document (empty when the data is sound)."""
        with self._guard():
            return find_duplicate_balances(self._balances)

    def recover(self) -> RecoveryReport:
        """Finish every purchase, entry and marker a crash left unfinished; idempotent.

        Safe to run while other writers are active: finishing the same work twice
        applies it once.
        """
        with self._guard():
            purchases = list(
                self._purchases.find(
                    {"pendingSince": {"$exists": True}}, sort=[("pendingSince", 1)]
                )
            )
            for doc in purchases:
                self._finish_purchase(doc)
            entries = list(
                self._transactions.find({"buytokens.state": _PENDING}, sort=[("_id", 1)])
            )
            finished = cancelled = 0
            abandoned_before = self._clock.now() - self._adjustment_grace
            for entry in entries:
                if not _is_adjustment(entry):
                    self._settle(entry)
                    finished += 1
                elif _bson_time(entry["createdAt"]) <= abandoned_before:
                    # Its caller gave up long ago and was told so: never apply it now.
                    settled = self._settle(entry, cancel=True)
                    if settled["buytokens"]["state"] == _CANCELLED:
                        cancelled += 1
                    else:
                        finished += 1
            balances = list(self._balances.find({"buytokens.inflight.key": {"$exists": True}}))
            markers = 0
            for balance in balances:
                for marker in _inflight(balance):
                    self._finish_marker(balance["_id"], marker)
                    markers += 1
        report = RecoveryReport(len(purchases), finished, markers, cancelled)
        if report.total:
            _log.warning("recovered unfinished writes: %s", report)
        return report

    # -- BalanceRepository --------------------------------------------------------

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        """The stored purchase, after finishing any changes its last transition left pending."""
        with self._guard():
            doc = self._purchases.find_one({"_id": payment_intent_id})
            if doc is None:
                return None
            if doc.get("pending"):
                self._finish_purchase(doc)
        return _purchase_from_doc(doc)

    def add_purchase(self, purchase: Purchase) -> Purchase:
        """Store a new purchase unless one with its intent id exists; return the stored one."""
        with self._guard():
            try:
                self._purchases.insert_one(_purchase_doc(purchase, ()))
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
        purchase = transition.purchase
        changes = transition.changes
        with self._guard():
            for user_id in sorted({change.user_id for change in changes}):
                self._balance_document(user_id)  # refuses users with duplicate balances
            if changes and self._transactions.find_one(
                {"buytokens.key": {"$in": [change.key for change in changes]}}
            ):
                raise ConcurrentUpdate(
                    f"purchase {purchase.payment_intent_id}: a change of this transition "
                    "is already on the ledger"
                )
            doc = _purchase_doc(purchase, changes, self._clock.now())
            if transition.expected_version is None:
                try:
                    self._purchases.insert_one(doc)
                except DuplicateKeyError:
                    raise ConcurrentUpdate(
                        f"purchase {purchase.payment_intent_id} was stored concurrently"
                    ) from None
            else:
                self._replace_purchase(doc, transition.expected_version)
            entries = self._finish_changes(purchase.payment_intent_id, purchase.version, changes)
            if transition.delivery is not None:
                # Without transactions the journal is written last: a crash before it
                # loses only this audit line, and the redelivery that follows adds one.
                record_delivery(self._events, transition.delivery)
            return entries

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
        with self._guard():
            self._balance_document(change.user_id)
        deadline = time.monotonic() + self._adjustment_patience
        pause = 0.05
        failure: StoreUnavailable | None = None
        restarts = 0
        while restarts < _MAX_PURCHASE_ATTEMPTS:
            try:
                with self._guard():
                    entry = self._start_and_settle(change)
            except StoreUnavailable as exc:
                failure = exc
                if time.monotonic() >= deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 4, 2.0)
                continue
            if entry["buytokens"]["state"] == _APPLIED:
                return _entry_from_doc(entry)
            # A recovery pass took this entry for abandoned and cancelled it, which
            # freed its key: this call is still here, so it starts again.
            failure = None
            restarts += 1
        return self._cancel_adjustment(change, failure)

    def _cancel_adjustment(
        self, change: LedgerChange, failure: StoreUnavailable | None
    ) -> LedgerEntry:
        """Settle the outcome of an adjustment that could not be finished: applied, or never."""
        with self._guard():
            entry = self._transactions.find_one({"buytokens.key": change.key})
            if entry is not None:
                entry = self._settle(entry, cancel=True)
        if entry is not None and entry["buytokens"]["state"] == _APPLIED:
            return _entry_from_doc(entry)
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
        with self._guard():
            self._finish_pending_purchases(user_id)
            doc = self._balance_document(user_id)
        return 0 if doc is None else math.floor(_credits(doc))

    def purchases(self, user_id: str, limit: int = 100) -> Sequence[Purchase]:
        """The user's purchases, newest first, at most ``limit``; pending changes finished first."""
        if limit <= 0:
            return []  # pymongo reads a limit of 0 as "no limit"
        user_id = canonical_user_id(user_id)
        with self._guard():
            self._finish_pending_purchases(user_id)
            docs = list(
                self._purchases.find(
                    {"userId": user_id}, sort=[("createdAt", -1), ("_id", -1)], limit=limit
                )
            )
        return [_purchase_from_doc(doc) for doc in docs]

    def flagged_purchases(self, limit: int = 100) -> Sequence[Purchase]:
        """Purchases awaiting review, longest waiting first, at most ``limit``."""
        if limit <= 0:
            return []
        with self._guard():
            docs = list(
                self._purchases.find(
                    {"reviewReason": {"$ne": None}},
                    sort=[("updatedAt", 1), ("_id", 1)],
                    limit=limit,
                )
            )
        return [_purchase_from_doc(doc) for doc in docs]

    def ledger(self, user_id: str, limit: int = 100) -> Sequence[LedgerEntry]:
        """The user's applied ledger entries, newest first, at most ``limit``.

        Markers left on the user's balance are finished first, so the entries
        listed explain the balance ``balance()`` reports.
        """
        if limit <= 0:
            return []
        user_id = canonical_user_id(user_id)
        with self._guard():
            self._finish_pending_purchases(user_id)
            doc = self._balance_document(user_id)
            if doc is not None:
                for marker in _inflight(doc):
                    self._finish_marker(doc["_id"], marker)
            docs = list(
                self._transactions.find(
                    {"buytokens.userId": user_id, "buytokens.state": _APPLIED},
                    sort=[("buytokens.seq", -1), ("_id", -1)],
                    limit=limit,
                )
            )
        return [_entry_from_doc(doc) for doc in docs]

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        """The purchase's applied ledger entries, oldest first (see the port)."""
        with self._guard():
            docs = list(
                self._transactions.find(
                    {"buytokens.paymentIntentId": payment_intent_id, "buytokens.state": _APPLIED},
                    sort=[("_id", 1)],
                )
            )
        return [_entry_from_doc(doc) for doc in docs]

    # -- step 1: the purchase --------------------------------------------------------

    def _replace_purchase(self, doc: Document, expected_version: int) -> None:
        pi = doc["_id"]
        fields = {name: value for name, value in doc.items() if name != "_id"}
        unset = {} if "pendingSince" in fields else {"pendingSince": ""}
        update: Document = {"$set": fields}
        if unset:
            update["$unset"] = unset
        for _ in range(_MAX_PURCHASE_ATTEMPTS):
            result = self._purchases.update_one(
                {"_id": pi, "version": expected_version, "pending.0": {"$exists": False}}, update
            )
            if result.matched_count == 1:
                return
            stored = self._purchases.find_one({"_id": pi})
            if stored is None or stored.get("version") != expected_version:
                raise ConcurrentUpdate(f"purchase {pi} is no longer at version {expected_version}")
            # The version matches but its previous transition was never finished.
            self._finish_purchase(stored)
        raise ConcurrentUpdate(f"purchase {pi} kept changing; retry")

    def _finish_pending_purchases(self, user_id: str) -> None:
        """Finish the user's purchases whose last transition left changes pending.

        The sparse index on ``pendingSince`` holds only unfinished purchases, so
        when nothing is pending this costs one index probe that finds nothing.
        """
        for doc in self._purchases.find(
            {"pendingSince": {"$exists": True}, "userId": user_id}, sort=[("pendingSince", 1)]
        ):
            if doc.get("pending"):
                self._finish_purchase(doc)

    def _finish_purchase(self, doc: Document) -> None:
        changes = tuple(_change_from_doc(change) for change in doc.get("pending") or ())
        self._finish_changes(doc["_id"], int(doc["version"]), changes)

    def _finish_changes(
        self, payment_intent_id: str, version: int, changes: Sequence[LedgerChange]
    ) -> tuple[LedgerEntry, ...]:
        entries = tuple(_entry_from_doc(self._start_and_settle(change)) for change in changes)
        if changes:
            # Step 3, filtered on the version: a later transition's pending list
            # must never be cleared by a late finisher of this one.
            self._purchases.update_one(
                {"_id": payment_intent_id, "version": version},
                {"$set": {"pending": []}, "$unset": {"pendingSince": ""}},
            )
        return entries

    # -- step 2: one ledger change ----------------------------------------------------

    def _start_and_settle(self, change: LedgerChange) -> Document:
        """Steps 2a-2d for ``change``; the stored entry (possibly from an earlier start)."""
        now = self._clock.now()
        entry: Document = {
            "user": _user_ref(change.user_id),
            "tokenType": "credits",
            "context": _CONTEXTS[change.kind],
            "createdAt": now,
            "updatedAt": now,
            "buytokens": {
                "key": change.key,
                "state": _PENDING,
                "userId": change.user_id,
                "requested": change.tokens,
                "paymentIntentId": change.payment_intent_id,
                "reason": change.reason,
            },
        }
        for _ in range(3):
            attempt = dict(entry)  # the driver adds the new document's _id to it
            try:
                self._transactions.insert_one(attempt)
            except DuplicateKeyError:
                stored = self._transactions.find_one({"buytokens.key": change.key})
                if stored is not None:
                    return self._settle(stored)
                continue  # only a cancellation gives a key up: it is free again
            return self._settle(attempt)
        raise StoreCorrupted(f"ledger key {change.key} is both taken and missing")

    def _settle(self, entry: Document, *, cancel: bool = False) -> Document:
        """Steps 2b-2d for a stored entry; returns it applied (or, with ``cancel``, cancelled).

        Cancelling is a settlement that applies nothing: it goes through the same
        balance CAS, with a marker saying so, so that of one applier and one
        canceller exactly one wins, by the argument of step 2b. An entry already
        on the balance (its marker seen, or marked applied) stays applied.
        """
        ours = entry["buytokens"]
        key, user_id, requested = ours["key"], ours["userId"], int(ours["requested"])
        for attempt in range(_MAX_BALANCE_ATTEMPTS):
            balance = self._balance_for_update(user_id)  # read the balance first ...
            markers = _inflight(balance)
            for marker in markers:
                self._finish_marker(balance["_id"], marker)
            if any(_marks(marker, entry) for marker in markers):
                return self._entry_by_id(entry["_id"])
            current = self._current_entry(entry)  # ... then the entry: see step 2b
            if current["buytokens"]["state"] != _PENDING:
                return current
            credits = _credits(balance)
            base = math.floor(credits)
            seq = int(balance.get("buytokens", {}).get("seq", 0))
            # A balance LibreChat left negative absorbs no deduction at all.
            settlement = settle(max(base, 0), 0 if cancel else requested)
            marker = {
                "key": key,
                "entry": entry["_id"],
                "applied": settlement.applied,
                "shortfall": settlement.shortfall,
                "balanceAfter": base + settlement.applied,
                "seq": seq + 1,
            }
            # tokenCredits pins the value settled against (LibreChat spends with $inc); seq pins
            # that none of our writers applied or cancelled anything since the read (a balance
            # we never touched has no seq yet); the key check keeps a marker from being pushed
            # twice.
            condition: Document = {
                "_id": balance["_id"],
                "buytokens.seq": seq if seq else {"$in": [0, None]},
                "buytokens.inflight.key": {"$ne": key},
                f"buytokens.inflight.{_MAX_INFLIGHT - 1}": {"$exists": False},
            }
            update: Document = {
                "$inc": {"buytokens.seq": 1},
                "$push": {"buytokens.inflight": marker},
            }
            if cancel:
                marker["cancelled"] = True
            else:
                condition["tokenCredits"] = (
                    credits if "tokenCredits" in balance else {"$exists": False}
                )
                update["$set"] = {"tokenCredits": credits + settlement.applied}
            result = self._balances.update_one(condition, update)
            if result.matched_count == 1:
                self._finish_marker(balance["_id"], marker)
                return self._entry_by_id(entry["_id"])
            if attempt >= 5:
                # Someone keeps changing this balance (LibreChat spending); back off a little.
                time.sleep(min(0.0005 * 2 ** (attempt - 5), 0.05))
        raise StoreUnavailable(
            f"the balance of user {user_id} kept changing under {_MAX_BALANCE_ATTEMPTS} "
            f"attempts to apply {key}; retry later"
        )

    def _finish_marker(self, balance_id: Any, marker: Mapping[str, Any]) -> None:
        """Steps 2c and 2d: the entry takes the marker's numbers, then the marker goes.

        A cancelling marker leaves the entry ``cancelled`` with nothing applied and
        moves its key to ``cancelledKey``, so the key is free for a new attempt.
        """
        key = marker["key"]
        # Markers written before cancelling existed name their entry by key only.
        entry = {"_id": marker["entry"]} if "entry" in marker else {"buytokens.key": key}
        cancelled = bool(marker.get("cancelled"))
        update: Document = {
            "$set": {
                "rawAmount": marker["applied"],
                "tokenValue": marker["applied"],
                "updatedAt": self._clock.now(),
                "buytokens.state": _CANCELLED if cancelled else _APPLIED,
                "buytokens.applied": marker["applied"],
                "buytokens.shortfall": marker["shortfall"],
                "buytokens.balanceAfter": marker["balanceAfter"],
                "buytokens.seq": marker["seq"],
            }
        }
        if cancelled:
            update["$set"]["buytokens.cancelledKey"] = key
            update["$unset"] = {"buytokens.key": ""}
        result = self._transactions.update_one({**entry, "buytokens.state": _PENDING}, update)
        if (
            not cancelled
            and result.matched_count == 0
            and self._transactions.find_one(entry) is None
        ):
            # Pulling the marker would erase the only trace of this balance change.
            _log.error("balance %s carries marker %s but its ledger entry is gone", balance_id, key)
            return
        # The marker exactly (seq is unique per balance): a late finisher of a cancelled
        # attempt must never pull the marker of a newer attempt under the same key.
        self._balances.update_one(
            {"_id": balance_id},
            {"$pull": {"buytokens.inflight": {"key": key, "seq": marker["seq"]}}},
        )

    # -- reads ---------------------------------------------------------------------------

    def _balance_document(self, user_id: str) -> Document | None:
        user_id = canonical_user_id(user_id)
        docs = list(self._balances.find({"user": _user_ref(user_id)}, limit=2))
        if len(docs) > 1:
            ids = ", ".join(str(doc["_id"]) for doc in docs)
            raise StoreCorrupted(
                f"user {user_id} has more than one balance document (e.g. {ids}); merge them "
                "into one (see the start-up log) before their balance can change"
            )
        return docs[0] if docs else None

    def _balance_for_update(self, user_id: str) -> Document:
        doc = self._balance_document(user_id)
        if doc is not None:
            return doc
        # A duplicate key means it was created concurrently; the unique index kept it to one.
        with suppress(DuplicateKeyError):
            self._balances.update_one(
                {"user": _user_ref(user_id)}, {"$setOnInsert": {"tokenCredits": 0}}, upsert=True
            )
        doc = self._balance_document(user_id)
        if doc is None:
            raise StoreCorrupted(f"the balance of user {user_id} vanished as it was created")
        return doc

    def _entry_by_id(self, entry_id: Any) -> Document:
        doc: Document | None = self._transactions.find_one({"_id": entry_id})
        if doc is None:
            raise StoreCorrupted(f"ledger entry {entry_id} disappeared while it was being applied")
        return doc

    def _current_entry(self, entry: Document) -> Document:
        """The stored state of ``entry``, read through its key while it still holds it."""
        doc: Document | None = self._transactions.find_one(
            {"buytokens.key": entry["buytokens"]["key"]}
        )
        if doc is not None and doc["_id"] == entry["_id"]:
            return doc
        return self._entry_by_id(entry["_id"])  # cancelled: its key was given up

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate the driver's errors; nothing from pymongo crosses the port."""
        try:
            yield
        except BuyTokensError:
            raise
        except DuplicateKeyError as exc:
            raise StoreCorrupted(f"MongoDB refused a write as a duplicate: {exc}") from exc
        except WriteConcernError as exc:
            raise StoreUnavailable(f"MongoDB did not confirm a durable write: {exc}") from exc
        except (ConnectionFailure, ExecutionTimeout) as exc:
            raise StoreUnavailable(f"MongoDB is unreachable or timed out: {exc}") from exc
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB operation failed: {exc}") from exc
        except BSONError as exc:
            raise StoreCorrupted(f"MongoDB returned a document that cannot be read: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorrupted(
                f"a stored document is not in the expected shape: {exc!r}"
            ) from exc


# -- documents -------------------------------------------------------------------------------


def _user_ref(user_id: str) -> ObjectId | str:
    return ObjectId(user_id) if is_object_id(user_id) else user_id


def _marks(marker: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """Whether ``marker`` is the balance change of ``entry`` (by key for older markers)."""
    if marker["key"] != entry["buytokens"]["key"]:
        return False
    return "entry" not in marker or marker["entry"] == entry["_id"]


def _is_adjustment(entry: Mapping[str, Any]) -> bool:
    """An entry with no purchase behind it: only a call for its key may apply it."""
    return entry["buytokens"].get("paymentIntentId") is None


def _inflight(balance: Mapping[str, Any]) -> list[Document]:
    return list(balance.get("buytokens", {}).get("inflight") or ())


def _credits(balance: Mapping[str, Any]) -> float:
    value = balance.get("tokenCredits", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StoreCorrupted(
            f"balance document {balance.get('_id')} has tokenCredits {value!r}, not a number"
        )
    # An integer stays an integer, so LibreChat keeps reading whole credits.
    return int(value) if isinstance(value, int) else float(value)


def _time(value: datetime) -> str:
    """A fixed-width UTC text form: exact to the microsecond and sortable as text."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _bson_time(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _change_doc(change: LedgerChange) -> Document:
    return {
        "key": change.key,
        "userId": change.user_id,
        "kind": change.kind.value,
        "tokens": change.tokens,
        "paymentIntentId": change.payment_intent_id,
        "reason": change.reason,
    }


def _change_from_doc(doc: Mapping[str, Any]) -> LedgerChange:
    return LedgerChange(
        key=str(doc["key"]),
        user_id=str(doc["userId"]),
        kind=EntryKind(doc["kind"]),
        tokens=int(doc["tokens"]),
        payment_intent_id=doc.get("paymentIntentId"),
        reason=str(doc.get("reason", "")),
    )


def _purchase_doc(
    p: Purchase, pending: Iterable[LedgerChange], now: datetime | None = None
) -> Document:
    changes = [_change_doc(change) for change in pending]
    doc: Document = {
        "_id": p.payment_intent_id,
        "userId": p.user_id,
        "packageId": p.package_id,
        "tokens": p.tokens,
        "price": None
        if p.price is None
        else {"amount": p.price.amount, "currency": p.price.currency},
        "createdAt": _time(p.created_at),
        "updatedAt": _time(p.updated_at),
        "version": p.version,
        "status": p.status.value,  # for operators; always derived again on reading
        "succeeded": p.succeeded,
        "attempt": None if p.attempt is None else p.attempt.value,
        "attemptAt": None if p.attempt_at is None else _time(p.attempt_at),
        "amountRefunded": p.amount_refunded,
        "disputes": [
            {"id": d.dispute_id, "amount": d.amount, "state": d.state.value} for d in p.disputes
        ],
        "reviewReason": p.review_reason,
        "tokensCredited": p.tokens_credited,
        "tokensRefunded": p.tokens_refunded,
        "tokensHeld": p.tokens_held,
        "pending": changes,
    }
    if changes:
        doc["pendingSince"] = _time(now or p.updated_at)
    return doc


def _purchase_from_doc(doc: Mapping[str, Any]) -> Purchase:
    try:
        price = doc.get("price")
        return Purchase(
            payment_intent_id=str(doc["_id"]),
            user_id=doc.get("userId"),
            package_id=doc.get("packageId"),
            tokens=int(doc["tokens"]),
            price=None if price is None else Money(int(price["amount"]), str(price["currency"])),
            created_at=_parse_time(doc["createdAt"]),
            updated_at=_parse_time(doc["updatedAt"]),
            version=int(doc["version"]),
            succeeded=bool(doc["succeeded"]),
            attempt=None if doc.get("attempt") is None else AttemptOutcome(doc["attempt"]),
            attempt_at=None if doc.get("attemptAt") is None else _parse_time(doc["attemptAt"]),
            amount_refunded=int(doc["amountRefunded"]),
            disputes=tuple(
                DisputeRecord(str(d["id"]), int(d["amount"]), DisputeState(d["state"]))
                for d in doc.get("disputes") or ()
            ),
            review_reason=doc.get("reviewReason"),
            tokens_credited=int(doc["tokensCredited"]),
            tokens_refunded=int(doc["tokensRefunded"]),
            tokens_held=int(doc["tokensHeld"]),
        )
    except (KeyError, TypeError, ValueError, BuyTokensError) as exc:
        raise StoreCorrupted(f"purchase document {doc.get('_id')} is unreadable: {exc!r}") from exc


def _entry_from_doc(doc: Mapping[str, Any]) -> LedgerEntry:
    try:
        ours = doc["buytokens"]
        if ours["state"] != _APPLIED:
            raise StoreCorrupted(f"ledger entry {ours['key']} is not applied yet")
        return LedgerEntry(
            key=str(ours["key"]),
            user_id=str(ours["userId"]),
            kind=_KINDS[doc["context"]],
            requested=int(ours["requested"]),
            applied=int(ours["applied"]),
            shortfall=int(ours["shortfall"]),
            balance_after=int(ours["balanceAfter"]),
            created_at=_bson_time(doc["createdAt"]),
            payment_intent_id=ours.get("paymentIntentId"),
            reason=str(ours.get("reason", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorrupted(f"ledger entry {doc.get('_id')} is unreadable: {exc!r}") from exc


def has_unique_user_index(balances: Any) -> bool:
    """Whether the ``balances`` collection has a unique index on ``user`` alone."""
    for spec in balances.index_information().values():
        keys = list(spec["key"])
        on_user = len(keys) == 1 and keys[0][0] == "user" and keys[0][1] in (1, -1)
        if on_user and spec.get("unique") and not spec.get("partialFilterExpression"):
            return True
    return False


def find_duplicate_balances(balances: Any) -> tuple[DuplicateBalance, ...]:
    """Every user with more than one document in the ``balances`` collection."""
    pipeline: list[Document] = [
        {
            "$group": {
                "_id": "$user",
                "count": {"$sum": 1},
                "ids": {"$push": "$_id"},
                "credits": {"$push": "$tokenCredits"},
            }
        },
        {"$match": {"count": {"$gt": 1}}},
    ]
    groups = list(balances.aggregate(pipeline))
    return tuple(
        DuplicateBalance(
            user_id=str(group["_id"]),
            document_ids=tuple(str(doc_id) for doc_id in group["ids"]),
            token_credits=tuple(
                float(c) if isinstance(c, int | float) else 0.0 for c in group["credits"]
            ),
        )
        for group in sorted(groups, key=lambda g: str(g["_id"]))
    )


def record_delivery(events: Any, delivery: Delivery) -> None:
    """Count one delivery of a provider event in the journal collection ``events``."""
    events.update_one(
        {"_id": delivery.event_id},
        {
            "$set": {
                "type": delivery.event_type,
                "paymentIntentId": delivery.payment_intent_id,
                "disposition": delivery.disposition,
                "lastReceivedAt": delivery.received_at,
            },
            "$setOnInsert": {"firstReceivedAt": delivery.received_at},
            "$inc": {"deliveries": 1},
        },
        upsert=True,
    )


# -- connecting ----------------------------------------------------------------------------------


def connect_mongo(
    uri: str,
    *,
    database: str | None = None,
    timeout_ms: int = 10_000,
    server_selection_timeout_ms: int = 5_000,
) -> MongoDatabase:
    """The database ``uri`` names (``LibreChat`` when it names none), ready for this adapter.

    ``mongodb://`` and ``mongodb+srv://`` connect with pymongo: writes wait for a
    journaled majority acknowledgement (a webhook answers 2xx only after a
    durable write), retryable writes and reads, and bounded timeouts so a lost
    server surfaces as ``StoreUnavailable`` rather than a hang. ``mongomock://``
    gives a fresh in-memory server for demos and tests, wrapped so each call
    runs under one lock, as a single mongod runs each operation atomically.
    ``database`` overrides the name in the URI. No I/O happens here.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "mongomock":
        try:
            import mongomock  # noqa: PLC0415 -- a test and demo dependency, loaded only when asked for
        except ImportError:
            raise ConfigurationError(
                "MONGODB_URI=mongomock:// needs mongomock, which comes with the demo extra: "
                "pip install 'buytokens[demo]'"
            ) from None

        name = database or urlsplit(uri).path.lstrip("/").split("/")[0] or DEFAULT_DATABASE
        fake: Any = mongomock.MongoClient(tz_aware=True)
        return _LockedDatabase(fake.get_database(name), threading.RLock())
    if scheme not in ("mongodb", "mongodb+srv"):
        raise ConfigurationError(
            "MONGODB_URI must start with mongodb://, mongodb+srv:// or mongomock://"
        )
    try:
        client: MongoClient[Document] = MongoClient(
            uri,
            w="majority",
            journal=True,
            retryWrites=True,
            retryReads=True,
            timeoutMS=timeout_ms,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
            connectTimeoutMS=server_selection_timeout_ms,
            tz_aware=True,
            appname="buytokens",
            connect=False,
        )
        if database is not None:
            return client.get_database(database)
        return client.get_default_database(default=DEFAULT_DATABASE)
    except MongoConfigurationError as exc:
        raise ConfigurationError(f"MONGODB_URI is not usable: {exc}") from exc


class _LockedDatabase:
    """A mongomock database whose collection calls each run under one shared lock."""

    def __init__(self, database: Any, lock: threading.RLock) -> None:
        self._database = database
        self._lock = lock

    @property
    def name(self) -> str:
        return str(self._database.name)

    @property
    def client(self) -> Any:
        return self._database.client

    def get_collection(self, name: str) -> _LockedCollection:
        return _LockedCollection(self._database.get_collection(name), self._lock)

    def __getitem__(self, name: str) -> _LockedCollection:
        return self.get_collection(name)


class _LockedCollection:
    """Serialises every call; cursors are read to the end inside the lock."""

    _CURSORS = frozenset({"find", "aggregate", "list_indexes"})

    def __init__(self, collection: Any, lock: threading.RLock) -> None:
        self._collection = collection
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if not callable(attribute):
            return attribute

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = attribute(*args, **kwargs)
                return list(result) if name in self._CURSORS else result

        return locked
