"""The write sequence that makes a purchase transition exactly once without transactions.

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
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from pymongo.errors import DuplicateKeyError

from buytokens.adapters.mongo.codec import (
    APPLIED,
    CANCELLED,
    PENDING,
    change_from_doc,
    entry_from_doc,
    inflight,
    marks,
    new_entry_doc,
    purchase_doc,
    token_credits,
    user_ref,
)
from buytokens.adapters.mongo.connection import (
    BALANCES,
    PURCHASES,
    TRANSACTIONS,
    WEBHOOK_EVENTS,
    Document,
    MongoDatabase,
)
from buytokens.adapters.mongo.journal import record_delivery
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate, StoreCorrupted, StoreUnavailable
from buytokens.domain.ledger import LedgerChange, LedgerEntry, settle
from buytokens.domain.users import canonical_user_id
from buytokens.ports.clock import Clock

_log = logging.getLogger(__name__)

# Markers normally live for the two writes between a balance CAS and its pull;
# the bound only matters if crashes leave some behind, and those are finished
# before every new application.
_MAX_INFLIGHT = 16
_MAX_BALANCE_ATTEMPTS = 200
_MAX_PURCHASE_ATTEMPTS = 5


class MongoWrites:
    """The steps above over LibreChat's collections, each conditional and safe to repeat.

    Callers translate the driver's errors (``translated_errors``).
    """

    def __init__(self, database: MongoDatabase, clock: Clock) -> None:
        self.clock = clock
        self.purchases = database.get_collection(PURCHASES)
        self.balances = database.get_collection(BALANCES)
        self.transactions = database.get_collection(TRANSACTIONS)
        self.events = database.get_collection(WEBHOOK_EVENTS)

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        """Steps 1-3 for ``transition``, then its delivery in the journal; its new entries."""
        purchase = transition.purchase
        changes = transition.changes
        for user_id in sorted({change.user_id for change in changes}):
            self.balance_document(user_id)  # refuses users with duplicate balances
        if changes and self.transactions.find_one(
            {"buytokens.key": {"$in": [change.key for change in changes]}}
        ):
            raise ConcurrentUpdate(
                f"purchase {purchase.payment_intent_id}: a change of this transition "
                "is already on the ledger"
            )
        doc = purchase_doc(purchase, changes, self.clock.now())
        if transition.expected_version is None:
            try:
                self.purchases.insert_one(doc)
            except DuplicateKeyError:
                raise ConcurrentUpdate(
                    f"purchase {purchase.payment_intent_id} was stored concurrently"
                ) from None
        else:
            self.replace_purchase(doc, transition.expected_version)
        entries = self.finish_changes(purchase.payment_intent_id, purchase.version, changes)
        if transition.delivery is not None:
            # Without transactions the journal is written last: a crash before it
            # loses only this audit line, and the redelivery that follows adds one.
            record_delivery(self.events, transition.delivery)
        return entries

    # -- step 1: the purchase --------------------------------------------------------

    def replace_purchase(self, doc: Document, expected_version: int) -> None:
        pi = doc["_id"]
        fields = {name: value for name, value in doc.items() if name != "_id"}
        unset = {} if "pendingSince" in fields else {"pendingSince": ""}
        update: Document = {"$set": fields}
        if unset:
            update["$unset"] = unset
        for _ in range(_MAX_PURCHASE_ATTEMPTS):
            result = self.purchases.update_one(
                {"_id": pi, "version": expected_version, "pending.0": {"$exists": False}}, update
            )
            if result.matched_count == 1:
                return
            stored = self.purchases.find_one({"_id": pi})
            if stored is None or stored.get("version") != expected_version:
                raise ConcurrentUpdate(f"purchase {pi} is no longer at version {expected_version}")
            # The version matches but its previous transition was never finished.
            self.finish_purchase(stored)
        raise ConcurrentUpdate(f"purchase {pi} kept changing; retry")

    def finish_pending_purchases(self, user_id: str) -> None:
        """Finish the user's purchases whose last transition left changes pending.

        The sparse index on ``pendingSince`` holds only unfinished purchases, so
        when nothing is pending this costs one index probe that finds nothing.
        """
        for doc in self.purchases.find(
            {"pendingSince": {"$exists": True}, "userId": user_id}, sort=[("pendingSince", 1)]
        ):
            if doc.get("pending"):
                self.finish_purchase(doc)

    def finish_purchase(self, doc: Document) -> None:
        changes = tuple(change_from_doc(change) for change in doc.get("pending") or ())
        self.finish_changes(doc["_id"], int(doc["version"]), changes)

    def finish_changes(
        self, payment_intent_id: str, version: int, changes: Sequence[LedgerChange]
    ) -> tuple[LedgerEntry, ...]:
        entries = tuple(entry_from_doc(self.start_and_settle(change)) for change in changes)
        if changes:
            # Step 3, filtered on the version: a later transition's pending list
            # must never be cleared by a late finisher of this one.
            self.purchases.update_one(
                {"_id": payment_intent_id, "version": version},
                {"$set": {"pending": []}, "$unset": {"pendingSince": ""}},
            )
        return entries

    # -- step 2: one ledger change ----------------------------------------------------

    def start_and_settle(self, change: LedgerChange) -> Document:
        """Steps 2a-2d for ``change``; the stored entry (possibly from an earlier start)."""
        entry = new_entry_doc(change, self.clock.now())
        for _ in range(3):
            attempt = dict(entry)  # the driver adds the new document's _id to it
            try:
                self.transactions.insert_one(attempt)
            except DuplicateKeyError:
                stored = self.transactions.find_one({"buytokens.key": change.key})
                if stored is not None:
                    return self.settle(stored)
                continue  # only a cancellation gives a key up: it is free again
            return self.settle(attempt)
        raise StoreCorrupted(f"ledger key {change.key} is both taken and missing")

    def settle(self, entry: Document, *, cancel: bool = False) -> Document:
        """Steps 2b-2d for a stored entry; returns it applied (or, with ``cancel``, cancelled).

        Cancelling is a settlement that applies nothing: it goes through the same
        balance CAS, with a marker saying so, so that of one applier and one
        canceller exactly one wins, by the argument of step 2b. An entry already
        on the balance (its marker seen, or marked applied) stays applied.
        """
        ours = entry["buytokens"]
        key, user_id, requested = ours["key"], ours["userId"], int(ours["requested"])
        for attempt in range(_MAX_BALANCE_ATTEMPTS):
            balance = self.balance_for_update(user_id)  # read the balance first ...
            markers = inflight(balance)
            for marker in markers:
                self.finish_marker(balance["_id"], marker)
            if any(marks(marker, entry) for marker in markers):
                return self.entry_by_id(entry["_id"])
            current = self.current_entry(entry)  # ... then the entry: see step 2b
            if current["buytokens"]["state"] != PENDING:
                return current
            credits = token_credits(balance)
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
            result = self.balances.update_one(condition, update)
            if result.matched_count == 1:
                self.finish_marker(balance["_id"], marker)
                return self.entry_by_id(entry["_id"])
            if attempt >= 5:
                # Someone keeps changing this balance (LibreChat spending); back off a little.
                time.sleep(min(0.0005 * 2 ** (attempt - 5), 0.05))
        raise StoreUnavailable(
            f"the balance of user {user_id} kept changing under {_MAX_BALANCE_ATTEMPTS} "
            f"attempts to apply {key}; retry later"
        )

    def finish_marker(self, balance_id: Any, marker: Mapping[str, Any]) -> None:
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
                "updatedAt": self.clock.now(),
                "buytokens.state": CANCELLED if cancelled else APPLIED,
                "buytokens.applied": marker["applied"],
                "buytokens.shortfall": marker["shortfall"],
                "buytokens.balanceAfter": marker["balanceAfter"],
                "buytokens.seq": marker["seq"],
            }
        }
        if cancelled:
            update["$set"]["buytokens.cancelledKey"] = key
            update["$unset"] = {"buytokens.key": ""}
        result = self.transactions.update_one({**entry, "buytokens.state": PENDING}, update)
        if (
            not cancelled
            and result.matched_count == 0
            and self.transactions.find_one(entry) is None
        ):
            # Pulling the marker would erase the only trace of this balance change.
            _log.error("balance %s carries marker %s but its ledger entry is gone", balance_id, key)
            return
        # The marker exactly (seq is unique per balance): a late finisher of a cancelled
        # attempt must never pull the marker of a newer attempt under the same key.
        self.balances.update_one(
            {"_id": balance_id},
            {"$pull": {"buytokens.inflight": {"key": key, "seq": marker["seq"]}}},
        )

    # -- reads ---------------------------------------------------------------------------

    def balance_document(self, user_id: str) -> Document | None:
        user_id = canonical_user_id(user_id)
        docs = list(self.balances.find({"user": user_ref(user_id)}, limit=2))
        if len(docs) > 1:
            ids = ", ".join(str(doc["_id"]) for doc in docs)
            raise StoreCorrupted(
                f"user {user_id} has more than one balance document (e.g. {ids}); merge them "
                "into one (see the start-up log) before their balance can change"
            )
        return docs[0] if docs else None

    def balance_for_update(self, user_id: str) -> Document:
        doc = self.balance_document(user_id)
        if doc is not None:
            return doc
        # A duplicate key means it was created concurrently; the unique index kept it to one.
        with suppress(DuplicateKeyError):
            self.balances.update_one(
                {"user": user_ref(user_id)}, {"$setOnInsert": {"tokenCredits": 0}}, upsert=True
            )
        doc = self.balance_document(user_id)
        if doc is None:
            raise StoreCorrupted(f"the balance of user {user_id} vanished as it was created")
        return doc

    def entry_by_id(self, entry_id: Any) -> Document:
        doc: Document | None = self.transactions.find_one({"_id": entry_id})
        if doc is None:
            raise StoreCorrupted(f"ledger entry {entry_id} disappeared while it was being applied")
        return doc

    def current_entry(self, entry: Document) -> Document:
        """The stored state of ``entry``, read through its key while it still holds it."""
        doc: Document | None = self.transactions.find_one(
            {"buytokens.key": entry["buytokens"]["key"]}
        )
        if doc is not None and doc["_id"] == entry["_id"]:
            return doc
        return self.entry_by_id(entry["_id"])  # cancelled: its key was given up
