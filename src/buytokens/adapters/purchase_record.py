"""A purchase as a flat record of named fields, and back: the one mapping every store shares.

Each store keeps the record in its own form (named SQLite columns, a MongoDB
document) and writes times its own way; what a stored purchase consists of is
said here once. A new ``Purchase`` field is an edit here plus the stores'
schema (an SQLite migration adding its column).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from buytokens.domain.events import AttemptOutcome, DisputeState
from buytokens.domain.money import Money
from buytokens.domain.purchases import DisputeRecord, Purchase

PURCHASE_FIELDS = (
    "payment_intent_id",
    "user_id",
    "package_id",
    "tokens",
    "amount",
    "currency",
    "created_at",
    "updated_at",
    "version",
    "status",
    "succeeded",
    "attempt",
    "attempt_at",
    "amount_refunded",
    "disputes",
    "review_reason",
    "tokens_credited",
    "tokens_refunded",
    "tokens_held",
    "gift",
    "redeemed_by",
    "redeemed_at",
    "void_reason",
)
"""Every field of a record, in the order the stores keep them."""


def purchase_record(p: Purchase, time: Callable[[datetime], str]) -> dict[str, Any]:
    """``p`` as a record of ``PURCHASE_FIELDS``, its times written by ``time``.

    ``disputes`` is a list of ``{"id", "amount", "state"}``; ``status`` is there
    for operators only and is derived again on reading.
    """
    return {
        "payment_intent_id": p.payment_intent_id,
        "user_id": p.user_id,
        "package_id": p.package_id,
        "tokens": p.tokens,
        "amount": None if p.price is None else p.price.amount,
        "currency": None if p.price is None else p.price.currency,
        "created_at": time(p.created_at),
        "updated_at": time(p.updated_at),
        "version": p.version,
        "status": p.status.value,
        "succeeded": p.succeeded,
        "attempt": None if p.attempt is None else p.attempt.value,
        "attempt_at": None if p.attempt_at is None else time(p.attempt_at),
        "amount_refunded": p.amount_refunded,
        "disputes": [
            {"id": d.dispute_id, "amount": d.amount, "state": d.state.value} for d in p.disputes
        ],
        "review_reason": p.review_reason,
        "tokens_credited": p.tokens_credited,
        "tokens_refunded": p.tokens_refunded,
        "tokens_held": p.tokens_held,
        "gift": p.gift,
        "redeemed_by": p.redeemed_by,
        "redeemed_at": None if p.redeemed_at is None else time(p.redeemed_at),
        "void_reason": p.void_reason,
    }


def purchase_from_record(
    record: Mapping[str, Any], parse_time: Callable[[str], datetime]
) -> Purchase:
    """The purchase a record of ``purchase_record`` holds; optional fields may be missing.

    Raises ``KeyError``, ``TypeError`` or ``ValueError`` (or a domain error from
    ``Purchase``'s validators) for a record that does not hold a purchase.
    """
    amount, attempt, attempt_at = (
        record.get("amount"),
        record.get("attempt"),
        record.get("attempt_at"),
    )
    user, package, review = (
        record.get("user_id"),
        record.get("package_id"),
        record.get("review_reason"),
    )
    redeemer, redeemed_at, void = (
        record.get("redeemed_by"),
        record.get("redeemed_at"),
        record.get("void_reason"),
    )
    return Purchase(
        payment_intent_id=str(record["payment_intent_id"]),
        user_id=None if user is None else str(user),
        package_id=None if package is None else str(package),
        tokens=int(record["tokens"]),
        price=None if amount is None else Money(int(amount), str(record["currency"])),
        created_at=parse_time(record["created_at"]),
        updated_at=parse_time(record["updated_at"]),
        version=int(record["version"]),
        succeeded=bool(record["succeeded"]),
        attempt=None if attempt is None else AttemptOutcome(str(attempt)),
        attempt_at=None if attempt_at is None else parse_time(attempt_at),
        amount_refunded=int(record["amount_refunded"]),
        disputes=tuple(
            DisputeRecord(str(d["id"]), int(d["amount"]), DisputeState(d["state"]))
            for d in record.get("disputes") or ()
        ),
        review_reason=None if review is None else str(review),
        tokens_credited=int(record["tokens_credited"]),
        tokens_refunded=int(record["tokens_refunded"]),
        tokens_held=int(record["tokens_held"]),
        gift=bool(record.get("gift") or False),
        redeemed_by=None if redeemer is None else str(redeemer),
        redeemed_at=None if redeemed_at is None else parse_time(redeemed_at),
        void_reason=None if void is None else str(void),
    )
