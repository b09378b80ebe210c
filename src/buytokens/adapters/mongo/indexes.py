"""The indexes the write sequence relies on, and the diagnosis of duplicate balances.

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
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import DuplicateKeyError, OperationFailure

from buytokens.adapters.mongo.connection import (
    BALANCES,
    PURCHASES,
    TRANSACTIONS,
    Document,
    MongoDatabase,
)
from buytokens.domain.users import canonical_user_id
from buytokens.ports.diagnostics import DuplicateBalance

_log = logging.getLogger(__name__)

# A 24-hex-digit id with an upper-case digit: stored by versions that kept ids as given.
_NON_CANONICAL_ID = {"$regex": "^(?=[0-9a-fA-F]{24}$).*[A-F]"}
_UNIQUE_BALANCE_INDEX = "buytokens_one_balance_per_user"
_INDEX_CONFLICT_CODES = frozenset({85, 86})  # IndexOptionsConflict, IndexKeySpecsConflict


def ensure_indexes(database: MongoDatabase) -> tuple[DuplicateBalance, ...]:
    """Create the indexes the write sequence relies on; return users with duplicate balances.

    Creating an index that exists is a no-op. When some users already have
    several balance documents the unique index on ``balances.user`` cannot be
    built: each such user is logged at ERROR with how to merge, and returned.
    User ids an earlier version stored in upper case are rewritten first.
    The driver's errors are the caller's to translate.
    """
    purchases = database.get_collection(PURCHASES)
    transactions = database.get_collection(TRANSACTIONS)
    balances = database.get_collection(BALANCES)
    purchases.create_index([("userId", 1), ("createdAt", -1)], name="buytokens_purchases_by_user")
    purchases.create_index([("pendingSince", 1)], name="buytokens_purchases_pending", sparse=True)
    purchases.create_index(
        [("reviewReason", 1), ("updatedAt", 1)], name="buytokens_purchases_flagged"
    )
    transactions.create_index(
        [("buytokens.key", 1)], name="buytokens_entry_key", unique=True, sparse=True
    )
    transactions.create_index(
        [("buytokens.userId", 1), ("buytokens.seq", -1)],
        name="buytokens_ledger_by_user",
        sparse=True,
    )
    transactions.create_index([("buytokens.state", 1)], name="buytokens_entry_state", sparse=True)
    transactions.create_index(
        [("buytokens.paymentIntentId", 1)], name="buytokens_ledger_by_intent", sparse=True
    )
    balances.create_index([("buytokens.inflight.key", 1)], name="buytokens_inflight", sparse=True)
    _canonicalise_user_ids(purchases, transactions)
    return _ensure_unique_balances(balances)


def _canonicalise_user_ids(purchases: Any, transactions: Any) -> None:
    """Rewrite ObjectId-shaped user ids stored with upper-case digits in lower case.

    Earlier versions kept an id as spelled, so one LibreChat user (one balance
    document) could have purchases and ledger entries under several spellings.
    Both queries use an index on the field, and find nothing once done.
    """
    for collection, field in (
        (purchases, "userId"),
        (transactions, "buytokens.userId"),
    ):
        for doc in collection.find({field: _NON_CANONICAL_ID}, projection=[field]):
            stored = doc.get("userId") if field == "userId" else doc["buytokens"]["userId"]
            collection.update_one(
                {"_id": doc["_id"], field: stored}, {"$set": {field: canonical_user_id(stored)}}
            )


def _ensure_unique_balances(balances: Any) -> tuple[DuplicateBalance, ...]:
    if has_unique_user_index(balances):
        return ()
    duplicates = find_duplicate_balances(balances)
    if not duplicates:
        try:
            # LibreChat's own index on ``user`` is not unique; MongoDB 5.0 and later
            # accept a unique index on the same key beside it.
            balances.create_index([("user", 1)], name=_UNIQUE_BALANCE_INDEX, unique=True)
        except DuplicateKeyError:
            duplicates = find_duplicate_balances(balances)  # written while we looked
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
