"""Purchases and ledger entries as rows of the SQLite tables, and back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from buytokens.domain.events import AttemptOutcome, DisputeState
from buytokens.domain.ledger import EntryKind, LedgerEntry
from buytokens.domain.money import Money
from buytokens.domain.purchases import DisputeRecord, Purchase

PURCHASE_COLUMNS = (
    "payment_intent_id, user_id, package_id, tokens, amount, currency, created_at, updated_at, "
    "version, status, succeeded, attempt, attempt_at, amount_refunded, disputes, review_reason, "
    "tokens_credited, tokens_refunded, tokens_held"
)
LEDGER_COLUMNS = (
    "entry_key, user_id, kind, requested, applied, shortfall, balance_after, payment_intent_id, "
    "reason, created_at"
)
INSERT_PURCHASE = f"INSERT INTO purchases ({PURCHASE_COLUMNS}) VALUES ({', '.join('?' * 19)})"  # noqa: S608
UPDATE_PURCHASE = (
    "UPDATE purchases SET user_id = ?2, package_id = ?3, tokens = ?4, amount = ?5, currency = ?6, "
    "created_at = ?7, updated_at = ?8, version = ?9, status = ?10, succeeded = ?11, attempt = ?12, "
    "attempt_at = ?13, amount_refunded = ?14, disputes = ?15, review_reason = ?16, "
    "tokens_credited = ?17, tokens_refunded = ?18, tokens_held = ?19 "
    "WHERE payment_intent_id = ?1 AND version = ?20"
)
INSERT_ENTRY = f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({', '.join('?' * 10)})"  # noqa: S608


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def purchase_row(p: Purchase) -> tuple[object, ...]:
    disputes = json.dumps([[d.dispute_id, d.amount, d.state.value] for d in p.disputes])
    return (
        p.payment_intent_id,
        p.user_id,
        p.package_id,
        p.tokens,
        None if p.price is None else p.price.amount,
        None if p.price is None else p.price.currency,
        p.created_at.isoformat(),
        p.updated_at.isoformat(),
        p.version,
        p.status.value,
        int(p.succeeded),
        None if p.attempt is None else p.attempt.value,
        _iso(p.attempt_at),
        p.amount_refunded,
        disputes,
        p.review_reason,
        p.tokens_credited,
        p.tokens_refunded,
        p.tokens_held,
    )


def purchase_from_row(row: Sequence[Any]) -> Purchase:
    (pi, user, package, tokens, amount, currency, created, updated, version, _status,
     succeeded, attempt, attempt_at, refunded, disputes, review, credited, tk_refunded,
     held) = row  # fmt: skip
    parse = datetime.fromisoformat
    return Purchase(
        payment_intent_id=str(pi),
        user_id=None if user is None else str(user),
        package_id=None if package is None else str(package),
        tokens=int(tokens),
        price=None if amount is None else Money(int(amount), str(currency)),
        created_at=parse(created),
        updated_at=parse(updated),
        version=int(version),
        succeeded=bool(succeeded),
        attempt=None if attempt is None else AttemptOutcome(str(attempt)),
        attempt_at=None if attempt_at is None else parse(attempt_at),
        amount_refunded=int(refunded),
        disputes=tuple(
            DisputeRecord(str(i), int(a), DisputeState(s)) for i, a, s in json.loads(str(disputes))
        ),
        review_reason=None if review is None else str(review),
        tokens_credited=int(credited),
        tokens_refunded=int(tk_refunded),
        tokens_held=int(held),
    )


def entry_row(e: LedgerEntry) -> tuple[object, ...]:
    return (
        e.key,
        e.user_id,
        e.kind.value,
        e.requested,
        e.applied,
        e.shortfall,
        e.balance_after,
        e.payment_intent_id,
        e.reason,
        e.created_at.isoformat(),
    )


def entry_from_row(row: Sequence[Any]) -> LedgerEntry:
    key, user, kind, requested, applied, shortfall, after, pi, reason, created = row
    return LedgerEntry(
        key=str(key),
        user_id=str(user),
        kind=EntryKind(str(kind)),
        requested=int(requested),
        applied=int(applied),
        shortfall=int(shortfall),
        balance_after=int(after),
        created_at=datetime.fromisoformat(str(created)),
        payment_intent_id=None if pi is None else str(pi),
        reason=str(reason),
    )
