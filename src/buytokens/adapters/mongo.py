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
    (entry ``key``, ``state`` pending/applied, ``requested``, ``applied``,
    ``shortfall``, ``balanceAfter``, ``seq``, ``paymentIntentId``, ``reason``).
    A unique sparse index on ``buytokens.key`` makes every key exist once; the
    index ignores LibreChat's own transactions, which have no such field.
``balances``
    LibreChat's one document per user. This adapter adds a ``buytokens``
    sub-document: ``seq``, a counter of our applications, and ``inflight``, a
    list of at most a few markers ``{key, applied, shortfall, balanceAfter, seq}``
    for changes applied to ``tokenCredits`` whose entry is not marked yet.
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
changes, every pending entry (including admin adjustments) and every marker;
run it at start-up and periodically. ``record_adjustment`` uses steps 2a-2d
keyed by the change's key.

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
as LibreChat stores them; other ids are stored as strings.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
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
    ConcurrentUpdate,
    ConfigurationError,
    StoreCorrupted,
    StoreUnavailable,
)
from buytokens.domain.events import AttemptOutcome, DisputeState
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry, settle
from buytokens.domain.money import Money
from buytokens.domain.purchases import DisputeRecord, Purchase
from buytokens.ports.clock import Clock

_log = logging.getLogger(__name__)

Document = dict[str, Any]

PURCHASES = "buytokens_purchases"
BALANCES = "balances"
TRANSACTIONS = "transactions"
WEBHOOK_EVENTS = "buytokens_webhook_events"
DEFAULT_DATABASE = "LibreChat"  # LibreChat's default MONGO_URI names this database

_PENDING = "pending"
_APPLIED = "applied"
# Markers normally live for the two writes between a balance CAS and its pull;
# the bound only matters if crashes leave some behind, and those are finished
# before every new application.
_MAX_INFLIGHT = 16
_MAX_BALANCE_ATTEMPTS = 200
_MAX_PURCHASE_ATTEMPTS = 5
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
_CONTEXTS = {
    EntryKind.PURCHASE: "stripe_purchase",
    EntryKind.REFUND: "refund",
    EntryKind.DISPUTE: "dispute",
    EntryKind.ADMIN: "admin",
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
class DuplicateBalance:
    """A user with more than one balance document, which LibreChat would read arbitrarily."""

    user_id: str
    document_ids: tuple[str, ...]
    token_credits: tuple[float, ...]

    def describe(self) -> str:
        """One line naming the user, the documents and how to merge them."""
        documents = ", ".join(
            f"{doc_id} ({credits:g})"
            for doc_id, credits in zip(self.document_ids, self.token_credits, strict=True)
        )
        return (
            f"user {self.user_id} has {len(self.document_ids)} balance documents [{documents}]: "
            "keep one, set its tokenCredits to the intended total "
            f"(together {sum(self.token_credits):g}), "
            "delete the others, then restart buytokens to create the unique index"
        )


@attrs.frozen
class RecoveryReport:
    """What one ``recover()`` pass finished."""

    purchases: int = 0
    entries: int = 0
    markers: int = 0

    @property
    def total(self) -> int:
        """Everything finished, 0 when the store was already consistent."""
        return self.purchases + self.entries + self.markers


class MongoBalanceRepository:
    """A BalanceRepository in LibreChat's MongoDB, exactly once on a standalone mongod.

    See the module documentation for the write sequence and its recovery. The
    constructor creates the indexes (``ensure_indexes``); call ``recover()`` at
    start-up and periodically to finish work a crash left behind.
    """

    def __init__(self, database: MongoDatabase, clock: Clock) -> None:
        self._clock = clock
        self._purchases = database.get_collection(PURCHASES)
        self._balances = database.get_collection(BALANCES)
        self._transactions = database.get_collection(TRANSACTIONS)
        self._events = database.get_collection(WEBHOOK_EVENTS)
        self.ensure_indexes()

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
            return self._ensure_unique_balances()

    def _ensure_unique_balances(self) -> tuple[DuplicateBalance, ...]:
        for spec in self._balances.index_information().values():
            keys = list(spec["key"])
            on_user = len(keys) == 1 and keys[0][0] == "user" and keys[0][1] in (1, -1)
            if on_user and spec.get("unique") and not spec.get("partialFilterExpression"):
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
        with self._guard():
            groups = list(self._balances.aggregate(pipeline))
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
            for entry in entries:
                self._settle(entry)
            balances = list(self._balances.find({"buytokens.inflight.key": {"$exists": True}}))
            markers = 0
            for balance in balances:
                for marker in _inflight(balance):
                    self._finish_marker(balance["_id"], marker)
                    markers += 1
        report = RecoveryReport(len(purchases), len(entries), markers)
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

        A second call with the same key returns the entry stored the first time.
        Raises ``StoreCorrupted`` when the user has duplicate balance documents.
        """
        with self._guard():
            self._balance_document(change.user_id)
            return _entry_from_doc(self._start_and_settle(change))

    def balance(self, user_id: str) -> int:
        """The user's token credits (a fractional LibreChat balance rounded down); 0 if unseen."""
        with self._guard():
            doc = self._balance_document(user_id)
        return 0 if doc is None else math.floor(_credits(doc))

    def purchases(self, user_id: str, limit: int = 100) -> Sequence[Purchase]:
        """The user's purchases, newest first, at most ``limit``."""
        if limit <= 0:
            return []  # pymongo reads a limit of 0 as "no limit"
        with self._guard():
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
        with self._guard():
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
        try:
            self._transactions.insert_one(entry)
        except DuplicateKeyError:
            stored = self._transactions.find_one({"buytokens.key": change.key})
            if stored is None:
                raise StoreCorrupted(f"ledger key {change.key} is both taken and missing") from None
            entry = stored
        return self._settle(entry)

    def _settle(self, entry: Document) -> Document:
        """Steps 2b-2d for a stored entry; returns it applied."""
        ours = entry["buytokens"]
        key, user_id, requested = ours["key"], ours["userId"], int(ours["requested"])
        for attempt in range(_MAX_BALANCE_ATTEMPTS):
            balance = self._balance_for_update(user_id)  # read the balance first ...
            markers = _inflight(balance)
            for marker in markers:
                self._finish_marker(balance["_id"], marker)
            if any(marker["key"] == key for marker in markers):
                return self._entry_document(key)
            current = self._entry_document(key)  # ... then the entry: see step 2b
            if current["buytokens"]["state"] == _APPLIED:
                return current
            credits = _credits(balance)
            base = math.floor(credits)
            # A balance LibreChat left negative absorbs no deduction at all.
            settlement = settle(max(base, 0), requested)
            seq = int(balance.get("buytokens", {}).get("seq", 0))
            marker = {
                "key": key,
                "applied": settlement.applied,
                "shortfall": settlement.shortfall,
                "balanceAfter": base + settlement.applied,
                "seq": seq + 1,
            }
            # tokenCredits pins the value settled against (LibreChat spends with $inc); seq pins
            # that none of our writers applied anything since the read (a balance we never
            # touched has no seq yet); the key check keeps a marker from being pushed twice.
            condition: Document = {
                "_id": balance["_id"],
                "tokenCredits": credits if "tokenCredits" in balance else {"$exists": False},
                "buytokens.seq": seq if seq else {"$in": [0, None]},
                "buytokens.inflight.key": {"$ne": key},
                f"buytokens.inflight.{_MAX_INFLIGHT - 1}": {"$exists": False},
            }
            result = self._balances.update_one(
                condition,
                {
                    "$set": {"tokenCredits": credits + settlement.applied},
                    "$inc": {"buytokens.seq": 1},
                    "$push": {"buytokens.inflight": marker},
                },
            )
            if result.matched_count == 1:
                self._finish_marker(balance["_id"], marker)
                return self._entry_document(key)
            if attempt >= 5:
                # Someone keeps changing this balance (LibreChat spending); back off a little.
                time.sleep(min(0.0005 * 2 ** (attempt - 5), 0.05))
        raise StoreUnavailable(
            f"the balance of user {user_id} kept changing under {_MAX_BALANCE_ATTEMPTS} "
            f"attempts to apply {key}; retry later"
        )

    def _finish_marker(self, balance_id: Any, marker: Mapping[str, Any]) -> None:
        """Steps 2c and 2d: the entry takes the marker's numbers, then the marker goes."""
        key = marker["key"]
        result = self._transactions.update_one(
            {"buytokens.key": key, "buytokens.state": _PENDING},
            {
                "$set": {
                    "rawAmount": marker["applied"],
                    "tokenValue": marker["applied"],
                    "updatedAt": self._clock.now(),
                    "buytokens.state": _APPLIED,
                    "buytokens.applied": marker["applied"],
                    "buytokens.shortfall": marker["shortfall"],
                    "buytokens.balanceAfter": marker["balanceAfter"],
                    "buytokens.seq": marker["seq"],
                }
            },
        )
        if (
            result.matched_count == 0
            and self._transactions.find_one({"buytokens.key": key}) is None
        ):
            # Pulling the marker would erase the only trace of this balance change.
            _log.error("balance %s carries marker %s but its ledger entry is gone", balance_id, key)
            return
        self._balances.update_one(
            {"_id": balance_id}, {"$pull": {"buytokens.inflight": {"key": key}}}
        )

    # -- reads ---------------------------------------------------------------------------

    def _balance_document(self, user_id: str) -> Document | None:
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

    def _entry_document(self, key: str) -> Document:
        doc: Document | None = self._transactions.find_one({"buytokens.key": key})
        if doc is None:
            raise StoreCorrupted(f"ledger entry {key} disappeared while it was being applied")
        return doc

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
    return ObjectId(user_id) if _OBJECT_ID.fullmatch(user_id) else user_id


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
        import mongomock  # noqa: PLC0415 -- a test and demo dependency, loaded only when asked for

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
