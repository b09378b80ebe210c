"""Purchases, ledger changes and entries as documents of LibreChat's collections, and back.

User ids that are 24 hex digits are stored as ``ObjectId`` in ``user`` fields,
as LibreChat stores them; other ids are stored as strings. Everywhere else
(``userId`` fields) an id is in its canonical spelling (``canonical_user_id``:
lower-case hex for an ObjectId), and every method accepts any spelling; ids an
earlier version stored in upper case are rewritten at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from buytokens.adapters.mongo.connection import Document
from buytokens.adapters.purchase_record import (
    PURCHASE_FIELDS,
    purchase_from_record,
    purchase_record,
)
from buytokens.domain.errors import BuyTokensError, StoreCorrupted
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry
from buytokens.domain.purchases import Purchase
from buytokens.domain.users import is_object_id

PENDING = "pending"
APPLIED = "applied"
CANCELLED = "cancelled"
CONTEXTS = {
    EntryKind.PURCHASE: "stripe_purchase",
    EntryKind.REFUND: "refund",
    EntryKind.DISPUTE: "dispute",
    EntryKind.ADMIN: "admin",
    EntryKind.REDEMPTION: "code_redemption",
}
KINDS = {context: kind for kind, context in CONTEXTS.items()}


def user_ref(user_id: str) -> ObjectId | str:
    """How a ``user`` field holds ``user_id``: an ObjectId when it is one, as LibreChat does."""
    return ObjectId(user_id) if is_object_id(user_id) else user_id


def marks(marker: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """Whether ``marker`` is the balance change of ``entry`` (by key for older markers)."""
    if marker["key"] != entry["buytokens"]["key"]:
        return False
    return "entry" not in marker or marker["entry"] == entry["_id"]


def is_adjustment(entry: Mapping[str, Any]) -> bool:
    """An entry with no purchase behind it: only a call for its key may apply it."""
    return entry["buytokens"].get("paymentIntentId") is None


def inflight(balance: Mapping[str, Any]) -> list[Document]:
    """The markers of changes a balance document carries (see the write sequence)."""
    return list(balance.get("buytokens", {}).get("inflight") or ())


def token_credits(balance: Mapping[str, Any]) -> float:
    """A balance document's ``tokenCredits``; ``StoreCorrupted`` when it is not a number."""
    value = balance.get("tokenCredits", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StoreCorrupted(
            f"balance document {balance.get('_id')} has tokenCredits {value!r}, not a number"
        )
    # An integer stays an integer, so LibreChat keeps reading whole credits.
    return int(value) if isinstance(value, int) else float(value)


def time_text(value: datetime) -> str:
    """A fixed-width UTC text form: exact to the microsecond and sortable as text."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """The inverse of ``time_text``."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def optional_time_text(value: datetime | None) -> str | None:
    """``time_text`` of a moment that may be absent."""
    return None if value is None else time_text(value)


def parse_optional_time(value: str | None) -> datetime | None:
    """``parse_time`` of a stored moment that may be absent."""
    return None if value is None else parse_time(value)


def bson_time(value: datetime) -> datetime:
    """A date as read from BSON, in UTC whether or not the client was timezone-aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def change_doc(change: LedgerChange) -> Document:
    """A ledger change as a purchase's ``pending`` list keeps it."""
    return {
        "key": change.key,
        "userId": change.user_id,
        "kind": change.kind.value,
        "tokens": change.tokens,
        "paymentIntentId": change.payment_intent_id,
        "reason": change.reason,
    }


def change_from_doc(doc: Mapping[str, Any]) -> LedgerChange:
    """The inverse of ``change_doc``."""
    return LedgerChange(
        key=str(doc["key"]),
        user_id=str(doc["userId"]),
        kind=EntryKind(doc["kind"]),
        tokens=int(doc["tokens"]),
        payment_intent_id=doc.get("paymentIntentId"),
        reason=str(doc.get("reason", "")),
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def purchase_doc(
    p: Purchase, pending: Iterable[LedgerChange], now: datetime | None = None
) -> Document:
    """A purchase as stored, with the changes of its last transition still ``pending``.

    ``purchase_record``'s fields in camelCase, the intent id as ``_id`` and the
    price as one ``{amount, currency}`` sub-document (or None).
    """
    changes = [change_doc(change) for change in pending]
    record = purchase_record(p, time_text)
    doc: Document = {}
    for name, value in record.items():
        if name == "payment_intent_id":
            doc["_id"] = value
        elif name == "amount":
            doc["price"] = (
                None if value is None else {"amount": value, "currency": record["currency"]}
            )
        elif name != "currency":
            doc[_camel(name)] = value
    doc["pending"] = changes
    if changes:
        doc["pendingSince"] = time_text(now or p.updated_at)
    return doc


def purchase_from_doc(doc: Mapping[str, Any]) -> Purchase:
    """The purchase a document of ``buytokens_purchases`` holds (see ``purchase_doc``)."""
    try:
        price = doc.get("price")
        record = {name: doc.get(_camel(name)) for name in PURCHASE_FIELDS}
        record["payment_intent_id"] = doc["_id"]
        record["amount"] = None if price is None else price["amount"]
        record["currency"] = None if price is None else price["currency"]
        return purchase_from_record(record, parse_time)
    except (KeyError, TypeError, ValueError, BuyTokensError) as exc:
        raise StoreCorrupted(f"purchase document {doc.get('_id')} is unreadable: {exc!r}") from exc


def entry_from_doc(doc: Mapping[str, Any]) -> LedgerEntry:
    """An applied entry of ``transactions``; ``StoreCorrupted`` for any other."""
    try:
        ours = doc["buytokens"]
        if ours["state"] != APPLIED:
            raise StoreCorrupted(f"ledger entry {ours['key']} is not applied yet")
        return LedgerEntry(
            key=str(ours["key"]),
            user_id=str(ours["userId"]),
            kind=KINDS[doc["context"]],
            requested=int(ours["requested"]),
            applied=int(ours["applied"]),
            shortfall=int(ours["shortfall"]),
            balance_after=int(ours["balanceAfter"]),
            created_at=bson_time(doc["createdAt"]),
            payment_intent_id=ours.get("paymentIntentId"),
            reason=str(ours.get("reason", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorrupted(f"ledger entry {doc.get('_id')} is unreadable: {exc!r}") from exc


def new_entry_doc(change: LedgerChange, now: datetime) -> Document:
    """A ledger change as a LibreChat transaction, ``pending`` until its balance change lands."""
    return {
        "user": user_ref(change.user_id),
        "tokenType": "credits",
        "context": CONTEXTS[change.kind],
        "createdAt": now,
        "updatedAt": now,
        "buytokens": {
            "key": change.key,
            "state": PENDING,
            "userId": change.user_id,
            "requested": change.tokens,
            "paymentIntentId": change.payment_intent_id,
            "reason": change.reason,
        },
    }
