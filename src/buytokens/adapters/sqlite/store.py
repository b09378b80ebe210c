"""Purchases, the ledger and balances in one SQLite file, each transition in one transaction.

Every write runs in a transaction of the group-committing writer (``engine``),
committed with ``synchronous=FULL`` in WAL mode, so a commit that returned is on
disk. A second application of the same purchase transition is impossible
because the purchase row is replaced only at its expected version and every
ledger key is UNIQUE.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from buytokens.adapters.sqlite.codec import (
    INSERT_ENTRY,
    INSERT_PURCHASE,
    LEDGER_COLUMNS,
    PURCHASE_COLUMNS,
    UPDATE_PURCHASE,
    entry_from_row,
    entry_row,
    purchase_from_row,
    purchase_row,
)
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.journal import record_delivery
from buytokens.domain.checkout import Delivery
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate, StoreCorrupted
from buytokens.domain.ledger import LedgerChange, LedgerEntry
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.domain.users import canonical_user_id
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock

T = TypeVar("T")

_UPSERT_BALANCE = (
    "INSERT INTO balances (user_id, token_credits, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET token_credits = excluded.token_credits, "
    "updated_at = excluded.updated_at"
)


# A credit (a change that cannot be clamped) adds to the balance and reads the sum back
# in one statement; RETURNING needs SQLite 3.35.
_ADD_TO_BALANCE = (
    "INSERT INTO balances (user_id, token_credits, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET token_credits = token_credits + excluded.token_credits, "
    "updated_at = excluded.updated_at RETURNING token_credits"
)
_RETURNING = sqlite3.sqlite_version_info >= (3, 35)

# Written out, not bound, so that SQLite sees the query match the partial index
# ``purchases_in_review`` (schema migration 8) when it prepares it.
_IN_REVIEW = f"status = '{PurchaseStatus.NEEDS_REVIEW.value}'"


class SqliteBalanceRepository:
    """A BalanceRepository in one SQLite file; the schema is created and migrated on first use."""

    def __init__(
        self,
        path: str | Path | SqliteDatabase,
        clock: Clock,
        *,
        busy_timeout_ms: int = 10_000,
        connection_factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        self.database = (
            path
            if isinstance(path, SqliteDatabase)
            else SqliteDatabase(
                path, busy_timeout_ms=busy_timeout_ms, connection_factory=connection_factory
            )
        )
        self._clock = clock
        self._conn: sqlite3.Connection | None = None  # set inside a writer's transaction

    @property
    def path(self) -> str:
        """The database file."""
        return self.database.path

    def close(self) -> None:
        """Close the file's connections."""
        self.database.close()

    def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        if self._conn is not None:
            return self._conn.execute(sql, params).fetchall()
        return self.database.read(sql, params)

    def _transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is not None:
            return work(self._conn)
        return self.database.transact(work)

    async def atomically(self, work: Callable[[BalanceRepository], T]) -> T:
        """Run ``work`` on this store as one durable write transaction; await its COMMIT.

        ``work`` runs on the writer thread, where no other write of this process
        runs meanwhile: what it reads cannot change before what it writes is
        committed (other processes wait for SQLite's write lock). Whatever it
        raises comes back here with all of its writes undone.
        """

        def run(conn: sqlite3.Connection) -> T:
            return work(_InTransaction(self, conn))

        with self.database.guarded():
            return await self.database.transact_async(run)

    # -- BalanceRepository ----------------------------------------------------

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        rows = self._read(
            f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE payment_intent_id = ?",  # noqa: S608
            (payment_intent_id,),
        )
        return purchase_from_row(rows[0]) if rows else None

    def add_purchase(self, purchase: Purchase) -> Purchase:
        def add(conn: sqlite3.Connection) -> Purchase:
            row = conn.execute(
                f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE payment_intent_id = ?",  # noqa: S608
                (purchase.payment_intent_id,),
            ).fetchone()
            if row is not None:
                return purchase_from_row(row)
            conn.execute(INSERT_PURCHASE, purchase_row(purchase))
            return purchase

        with self.database.guarded():
            return self._transact(add)

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        purchase = transition.purchase

        def store(conn: sqlite3.Connection) -> tuple[LedgerEntry, ...]:
            try:
                if transition.expected_version is None:
                    conn.execute(INSERT_PURCHASE, purchase_row(purchase))
                else:
                    cursor = conn.execute(
                        UPDATE_PURCHASE,
                        purchase_row(purchase) | {"expected_version": transition.expected_version},
                    )
                    if cursor.rowcount != 1:
                        raise ConcurrentUpdate(
                            f"purchase {purchase.payment_intent_id} is no longer at version "
                            f"{transition.expected_version}"
                        )
                entries = tuple(self._apply(conn, change) for change in transition.changes)
                if transition.delivery is not None:
                    record_delivery(conn, transition.delivery)
                return entries
            except sqlite3.IntegrityError as exc:
                raise ConcurrentUpdate(
                    f"purchase {purchase.payment_intent_id} was changed concurrently: {exc}"
                ) from exc

        with self.database.guarded():
            return self._transact(store)

    def record_delivery(self, delivery: Delivery) -> None:
        with self.database.guarded():
            self._transact(lambda conn: record_delivery(conn, delivery))

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        def adjust(conn: sqlite3.Connection) -> LedgerEntry:
            row = conn.execute(
                f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE entry_key = ?",  # noqa: S608
                (change.key,),
            ).fetchone()
            if row is not None:
                return entry_from_row(row)
            return self._apply(conn, change)

        with self.database.guarded():
            return self._transact(adjust)

    def _apply(self, conn: sqlite3.Connection, change: LedgerChange) -> LedgerEntry:
        if change.tokens >= 0 and _RETURNING:
            now = self._clock.now()
            (after,) = conn.execute(
                _ADD_TO_BALANCE, (change.user_id, change.tokens, now.isoformat())
            ).fetchone()
            if not isinstance(after, int):  # SQLite turns an overflowing sum into a REAL
                raise StoreCorrupted(f"the balance of {change.user_id} would overflow")
            entry = LedgerEntry.from_change(change, after - change.tokens, now)
            conn.execute(INSERT_ENTRY, entry_row(entry))
            return entry
        row = conn.execute(
            "SELECT token_credits FROM balances WHERE user_id = ?", (change.user_id,)
        ).fetchone()
        entry = LedgerEntry.from_change(change, row[0] if row else 0, self._clock.now())
        conn.execute(INSERT_ENTRY, entry_row(entry))
        conn.execute(
            _UPSERT_BALANCE, (entry.user_id, entry.balance_after, entry.created_at.isoformat())
        )
        return entry

    def balance(self, user_id: str) -> int:
        user_id = canonical_user_id(user_id)
        rows = self._read("SELECT token_credits FROM balances WHERE user_id = ?", (user_id,))
        return int(rows[0][0]) if rows else 0

    def purchases(self, user_id: str, limit: int = 100) -> Sequence[Purchase]:
        user_id = canonical_user_id(user_id)
        rows = self._read(
            f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE user_id = ? "  # noqa: S608
            "ORDER BY created_at DESC, payment_intent_id DESC LIMIT ?",
            (user_id, limit),
        )
        return [purchase_from_row(row) for row in rows]

    def ledger(self, user_id: str, limit: int = 100) -> Sequence[LedgerEntry]:
        user_id = canonical_user_id(user_id)
        rows = self._read(
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE user_id = ? "  # noqa: S608
            "ORDER BY seq DESC LIMIT ?",
            (user_id, limit),
        )
        return [entry_from_row(row) for row in rows]

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        rows = self._read(
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE payment_intent_id = ? "  # noqa: S608
            "ORDER BY seq",
            (payment_intent_id,),
        )
        return [entry_from_row(row) for row in rows]

    def flagged_purchases(self, limit: int = 100) -> Sequence[Purchase]:
        rows = self._read(
            f"SELECT {PURCHASE_COLUMNS} FROM purchases WHERE {_IN_REVIEW} "  # noqa: S608
            "ORDER BY updated_at, payment_intent_id LIMIT ?",
            (limit,),
        )
        return [purchase_from_row(row) for row in rows]

    def ledger_sum(self, user_id: str) -> int:
        """The sum of the user's applied ledger deltas (equals the balance in this store)."""
        rows = self._read(
            "SELECT COALESCE(SUM(applied), 0) FROM ledger WHERE user_id = ?", (user_id,)
        )
        return int(rows[0][0])


class _InTransaction(SqliteBalanceRepository):
    """The store seen from inside one of the writer's transactions: reads and writes on it."""

    def __init__(self, store: SqliteBalanceRepository, conn: sqlite3.Connection) -> None:
        self.database = store.database
        self._clock = store._clock
        self._conn = conn
