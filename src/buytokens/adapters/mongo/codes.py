"""RedemptionCodes in MongoDB: ``buytokens_codes``, one document per code, ``_id`` = digest.

A document holds the record's fields; ``redeemedBy`` and ``redeemedAt`` are set
by ``claim``, one update filtered on ``redeemedBy: null``, which a single mongod
applies to at most one of any number of concurrent claims. ``creditPending`` is
true from the claim until ``mark_credited`` removes it; a sparse index on it lists
exactly the claims a crash left uncredited. Times are stored as fixed-width UTC
text, exact to the microsecond and sortable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from buytokens.adapters.mongo.codec import (
    optional_time_text,
    parse_optional_time,
    parse_time,
    time_text,
)
from buytokens.adapters.mongo.connection import MongoDatabase
from buytokens.domain.codes import CodeKind, CodeRecord, check_gift_index, check_same_gift
from buytokens.domain.errors import StoreCorrupted, StoreUnavailable, UserError
from buytokens.domain.users import canonical_user_id

CODES = "buytokens_codes"


class MongoRedemptionCodes:
    """RedemptionCodes in one collection of LibreChat's database; creates its indexes."""

    def __init__(self, database: MongoDatabase) -> None:
        self._codes = database.get_collection(CODES)
        with _guard():
            self._codes.create_index([("createdAt", -1)], name="buytokens_codes_by_created")
            self._codes.create_index(
                [("creditPending", 1), ("redeemedAt", 1)],
                name="buytokens_codes_uncredited",
                sparse=True,
            )

    def add(self, records: Sequence[CodeRecord]) -> None:
        if any(record.redeemed_by is not None for record in records):
            raise ValueError("only new, unredeemed codes can be added")
        if not records:
            return
        with _guard():
            try:
                self._codes.insert_many([_document(record) for record in records], ordered=True)
            except (DuplicateKeyError, BulkWriteError) as exc:
                raise StoreCorrupted(f"a code with this digest is already stored: {exc}") from exc

    def index_gift(self, record: CodeRecord) -> None:
        check_gift_index(record)
        doc = _document(record)
        # A concurrent upsert of the same gift may insert it first: then it is there.
        with _guard(), suppress(DuplicateKeyError):
            self._codes.update_one({"_id": doc.pop("_id")}, {"$setOnInsert": doc}, upsert=True)
        check_same_gift(self.find(record.digest), record)

    def find(self, digest: str) -> CodeRecord | None:
        with _guard():
            doc = self._codes.find_one({"_id": digest})
        return None if doc is None else _record(doc)

    def claim(self, digest: str, user_id: str, at: datetime) -> bool:
        with _guard():
            result = self._codes.update_one(
                {"_id": digest, "redeemedBy": None},
                {
                    "$set": {
                        "redeemedBy": canonical_user_id(user_id),
                        "redeemedAt": time_text(at),
                        "creditPending": True,
                    }
                },
            )
        return bool(result.matched_count == 1)

    def mark_credited(self, digest: str) -> None:
        with _guard():
            self._codes.update_one(
                {"_id": digest, "redeemedBy": {"$ne": None}}, {"$unset": {"creditPending": ""}}
            )

    def codes(self, *, unredeemed_only: bool = False, limit: int = 1000) -> Sequence[CodeRecord]:
        if limit <= 0:
            return []  # pymongo reads a limit of 0 as "no limit"
        query = {"redeemedBy": None} if unredeemed_only else {}
        with _guard():
            docs = list(self._codes.find(query, sort=[("createdAt", -1), ("_id", -1)], limit=limit))
        return [_record(doc) for doc in docs]

    def uncredited(self, limit: int = 100) -> Sequence[CodeRecord]:
        if limit <= 0:
            return []
        with _guard():
            docs = list(
                self._codes.find(
                    {"creditPending": True}, sort=[("redeemedAt", 1), ("_id", 1)], limit=limit
                )
            )
        return [_record(doc) for doc in docs]


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except StoreCorrupted:
        raise
    except PyMongoError as exc:
        raise StoreUnavailable(f"MongoDB failed on {CODES}: {exc}") from exc


def _document(r: CodeRecord) -> dict[str, Any]:
    return {
        "_id": r.digest,
        "hint": r.hint,
        "kind": r.kind.value,
        "tokens": r.tokens,
        "reason": r.reason,
        "createdAt": time_text(r.created_at),
        "expiresAt": optional_time_text(r.expires_at),
        "paymentIntentId": r.payment_intent_id,
        "buyerId": r.buyer_id,
        "redeemedBy": None,
        "redeemedAt": None,
    }


def _record(doc: Mapping[str, Any]) -> CodeRecord:
    try:
        redeemed_by = doc.get("redeemedBy")
        return CodeRecord(
            digest=str(doc["_id"]),
            hint=str(doc["hint"]),
            kind=CodeKind(doc["kind"]),
            tokens=int(doc["tokens"]),
            created_at=parse_time(doc["createdAt"]),
            expires_at=parse_optional_time(doc.get("expiresAt")),
            reason=str(doc.get("reason", "")),
            payment_intent_id=doc.get("paymentIntentId"),
            buyer_id=doc.get("buyerId"),
            redeemed_by=None if redeemed_by is None else str(redeemed_by),
            redeemed_at=parse_optional_time(doc.get("redeemedAt")),
            credited=redeemed_by is not None and not doc.get("creditPending"),
        )
    except (KeyError, TypeError, ValueError, UserError) as exc:
        raise StoreCorrupted(f"code document {doc.get('_id')!r} is unreadable: {exc!r}") from exc
