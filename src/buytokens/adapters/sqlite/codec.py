"""Purchases and ledger entries as named rows of the SQLite tables, and back.

A purchase's fields are ``purchase_record``'s, one column each; its disputes are
one JSON column of ``[id, amount, state]`` triples. Statements bind parameters
by name, and rows are read by column name (``sqlite3.Row``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from buytokens.adapters.purchase_record import (
    PURCHASE_FIELDS,
    purchase_from_record,
    purchase_record,
)
from buytokens.domain.ledger import EntryKind, LedgerEntry
from buytokens.domain.purchases import Purchase


def optional_iso(value: datetime | None) -> str | None:
    """A time as a column holds it, or NULL for none."""
    return None if value is None else value.isoformat()


def optional_time(value: object) -> datetime | None:
    """The time a nullable time column holds, or None for NULL."""
    return None if value is None else datetime.fromisoformat(str(value))


def placeholders(fields: Sequence[str]) -> str:
    """``:a, :b, ...``: the named parameters of an INSERT of these columns."""
    return ", ".join(f":{name}" for name in fields)


LEDGER_FIELDS = (
    "entry_key",
    "user_id",
    "kind",
    "requested",
    "applied",
    "shortfall",
    "balance_after",
    "payment_intent_id",
    "reason",
    "created_at",
)

PURCHASE_COLUMNS = ", ".join(PURCHASE_FIELDS)
LEDGER_COLUMNS = ", ".join(LEDGER_FIELDS)
INSERT_PURCHASE = (
    f"INSERT INTO purchases ({PURCHASE_COLUMNS}) "  # noqa: S608 - names of our own columns
    f"VALUES ({placeholders(PURCHASE_FIELDS)})"
)
UPDATE_PURCHASE = (
    "UPDATE purchases SET "  # noqa: S608 - names of our own columns
    + ", ".join(f"{name} = :{name}" for name in PURCHASE_FIELDS if name != "payment_intent_id")
    + " WHERE payment_intent_id = :payment_intent_id AND version = :expected_version"
)
INSERT_ENTRY = (
    f"INSERT INTO ledger ({LEDGER_COLUMNS}) "  # noqa: S608 - names of our own columns
    f"VALUES ({placeholders(LEDGER_FIELDS)})"
)


def _iso(value: datetime) -> str:
    return value.isoformat()


def purchase_row(p: Purchase) -> dict[str, Any]:
    """The purchase's row, as named parameters of ``INSERT_PURCHASE`` and ``UPDATE_PURCHASE``."""
    row = purchase_record(p, _iso)
    row["disputes"] = json.dumps([[d["id"], d["amount"], d["state"]] for d in row["disputes"]])
    return row


def purchase_from_row(row: Mapping[str, Any]) -> Purchase:
    """The purchase a row of ``purchases`` holds."""
    record = dict(row)
    record["disputes"] = [
        {"id": i, "amount": a, "state": s} for i, a, s in json.loads(str(record["disputes"]))
    ]
    return purchase_from_record(record, datetime.fromisoformat)


def entry_row(e: LedgerEntry) -> dict[str, Any]:
    """The entry's row, as named parameters of ``INSERT_ENTRY``."""
    return {
        "entry_key": e.key,
        "user_id": e.user_id,
        "kind": e.kind.value,
        "requested": e.requested,
        "applied": e.applied,
        "shortfall": e.shortfall,
        "balance_after": e.balance_after,
        "payment_intent_id": e.payment_intent_id,
        "reason": e.reason,
        "created_at": e.created_at.isoformat(),
    }


def entry_from_row(row: Mapping[str, Any]) -> LedgerEntry:
    """The entry a row of ``ledger`` holds."""
    pi = row["payment_intent_id"]
    return LedgerEntry(
        key=str(row["entry_key"]),
        user_id=str(row["user_id"]),
        kind=EntryKind(str(row["kind"])),
        requested=int(row["requested"]),
        applied=int(row["applied"]),
        shortfall=int(row["shortfall"]),
        balance_after=int(row["balance_after"]),
        created_at=datetime.fromisoformat(str(row["created_at"])),
        payment_intent_id=None if pi is None else str(pi),
        reason=str(row["reason"]),
    )
