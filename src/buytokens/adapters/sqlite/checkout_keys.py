"""Checkout idempotency keys in the SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.ports.checkout import KeyReservation

_COMPLETE = (
    "UPDATE checkout_keys SET payment_intent_id = ? WHERE user_id = ? AND idempotency_key = ?"
)
_RELEASE = (
    "DELETE FROM checkout_keys WHERE user_id = ? AND idempotency_key = ? "
    "AND payment_intent_id IS NULL"
)


class SqliteCheckoutKeys:
    """CheckoutKeys (and AwaitableCheckoutKeys) in the same SQLite file; the primary key makes
    a reservation atomic."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def reserve(
        self, user_id: str, key: str, fingerprint: str, at: datetime
    ) -> KeyReservation | None:
        def reserve(conn: sqlite3.Connection) -> KeyReservation | None:
            row = conn.execute(
                "SELECT fingerprint, reserved_at, payment_intent_id FROM checkout_keys "
                "WHERE user_id = ? AND idempotency_key = ?",
                (user_id, key),
            ).fetchone()
            if row is not None:
                return KeyReservation(
                    row["fingerprint"],
                    datetime.fromisoformat(row["reserved_at"]),
                    row["payment_intent_id"],
                )
            conn.execute(
                "INSERT INTO checkout_keys (user_id, idempotency_key, fingerprint, reserved_at) "
                "VALUES (?, ?, ?, ?)",
                (user_id, key, fingerprint, at.isoformat()),
            )
            return None

        with self._db.guarded():
            return self._db.transact(reserve)

    def complete(self, user_id: str, key: str, payment_intent_id: str) -> None:
        self._execute(_COMPLETE, (payment_intent_id, user_id, key))

    def release(self, user_id: str, key: str) -> None:
        self._execute(_RELEASE, (user_id, key))

    async def complete_awaiting(self, user_id: str, key: str, payment_intent_id: str) -> None:
        await self._execute_awaiting(_COMPLETE, (payment_intent_id, user_id, key))

    async def release_awaiting(self, user_id: str, key: str) -> None:
        await self._execute_awaiting(_RELEASE, (user_id, key))

    async def _execute_awaiting(self, sql: str, params: Sequence[object]) -> None:
        with self._db.guarded():
            await self._db.transact_async(lambda conn: conn.execute(sql, params))

    def _execute(self, sql: str, params: Sequence[object]) -> None:
        with self._db.guarded():
            self._db.transact(lambda conn: conn.execute(sql, params))
