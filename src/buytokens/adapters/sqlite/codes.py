"""RedemptionCodes in the embedded store's SQLite file (table ``codes``, migration 4)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from buytokens.adapters.sqlite.codec import optional_iso, optional_time, placeholders
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.domain.codes import CodeKind, CodeRecord, check_gift_index, check_same_gift
from buytokens.domain.errors import StoreCorrupted, UserError
from buytokens.domain.users import canonical_user_id

_FIELDS = (
    "digest",
    "hint",
    "kind",
    "tokens",
    "reason",
    "created_at",
    "expires_at",
    "payment_intent_id",
    "buyer_id",
    "redeemed_by",
    "redeemed_at",
    "credited",
)
_COLUMNS = ", ".join(_FIELDS)
_SELECT = f"SELECT {_COLUMNS} FROM codes"  # noqa: S608 - names of our own columns
_INSERT = f"INSERT INTO codes ({_COLUMNS}) VALUES ({placeholders(_FIELDS)})"  # noqa: S608


class SqliteRedemptionCodes:
    """RedemptionCodes in the same file as the balances.

    ``claim`` is one ``UPDATE ... WHERE redeemed_by IS NULL``: of concurrent claims
    (in this process or another on the same file) exactly one matches the row.
    """

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def add(self, records: Sequence[CodeRecord]) -> None:
        if any(record.redeemed_by is not None for record in records):
            raise ValueError("only new, unredeemed codes can be added")
        rows = [_row(record) for record in records]

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.executemany(_INSERT, rows)
            except sqlite3.IntegrityError as exc:
                raise StoreCorrupted(f"a code with this digest is already stored: {exc}") from exc

        with self._db.guarded():
            self._db.transact(insert)

    def index_gift(self, record: CodeRecord) -> None:
        check_gift_index(record)
        row = _row(record)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(f"{_INSERT} ON CONFLICT (digest) DO NOTHING", row)

        with self._db.guarded():
            self._db.transact(insert)
        check_same_gift(self.find(record.digest), record)

    def find(self, digest: str) -> CodeRecord | None:
        rows = self._db.read(f"{_SELECT} WHERE digest = ?", (digest,))
        return _record(rows[0]) if rows else None

    def claim(self, digest: str, user_id: str, at: datetime) -> bool:
        params = (canonical_user_id(user_id), at.isoformat(), digest)

        def claim(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE codes SET redeemed_by = ?, redeemed_at = ? "
                "WHERE digest = ? AND redeemed_by IS NULL",
                params,
            )
            return cursor.rowcount == 1

        with self._db.guarded():
            return self._db.transact(claim)

    def mark_credited(self, digest: str) -> None:
        with self._db.guarded():
            self._db.transact(
                lambda conn: conn.execute(
                    "UPDATE codes SET credited = 1 WHERE digest = ? AND redeemed_by IS NOT NULL",
                    (digest,),
                )
            )

    def codes(self, *, unredeemed_only: bool = False, limit: int = 1000) -> Sequence[CodeRecord]:
        where = "WHERE redeemed_by IS NULL " if unredeemed_only else ""
        rows = self._db.read(
            f"{_SELECT} {where}ORDER BY created_at DESC, digest DESC LIMIT ?", (max(limit, 0),)
        )
        return [_record(row) for row in rows]

    def uncredited(self, limit: int = 100) -> Sequence[CodeRecord]:
        rows = self._db.read(
            f"{_SELECT} WHERE redeemed_by IS NOT NULL AND credited = 0 "
            "ORDER BY redeemed_at, digest LIMIT ?",
            (max(limit, 0),),
        )
        return [_record(row) for row in rows]


def _row(r: CodeRecord) -> dict[str, Any]:
    """The record's row, as named parameters of ``_INSERT``."""
    return {
        "digest": r.digest,
        "hint": r.hint,
        "kind": r.kind.value,
        "tokens": r.tokens,
        "reason": r.reason,
        "created_at": r.created_at.isoformat(),
        "expires_at": optional_iso(r.expires_at),
        "payment_intent_id": r.payment_intent_id,
        "buyer_id": r.buyer_id,
        "redeemed_by": r.redeemed_by,
        "redeemed_at": optional_iso(r.redeemed_at),
        "credited": int(r.credited),
    }


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _record(row: Mapping[str, Any]) -> CodeRecord:
    """The record a row of ``codes`` holds."""
    try:
        return CodeRecord(
            digest=str(row["digest"]),
            hint=str(row["hint"]),
            kind=CodeKind(str(row["kind"])),
            tokens=int(row["tokens"]),
            created_at=datetime.fromisoformat(str(row["created_at"])),
            expires_at=optional_time(row["expires_at"]),
            reason=str(row["reason"]),
            payment_intent_id=_optional_text(row["payment_intent_id"]),
            buyer_id=_optional_text(row["buyer_id"]),
            redeemed_by=_optional_text(row["redeemed_by"]),
            redeemed_at=optional_time(row["redeemed_at"]),
            credited=bool(row["credited"]),
        )
    except (ValueError, TypeError, UserError) as exc:
        raise StoreCorrupted(f"code row {row['digest']!r} is unreadable: {exc}") from exc
