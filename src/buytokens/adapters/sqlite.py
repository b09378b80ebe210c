"""The embedded store: one SQLite file, safe for many threads and processes.

Every write runs in a ``BEGIN IMMEDIATE`` transaction committed with
``synchronous=FULL`` in WAL mode, so a commit that returned is on disk: the
webhook's 2xx, which stops Stripe's retries, always follows a durable outcome.
A second application of the same purchase transition is impossible because the
purchase row is replaced only at its expected version and every ledger key is
UNIQUE.

Writes of one process go through one writer thread that commits whatever has
queued up meanwhile in a single transaction (group commit): each write runs in
its own savepoint, so one that fails leaves the others intact, and every caller
returns only once the shared COMMIT, one fsync for all of them, is on disk.
Other processes on the same file wait for SQLite's write lock as usual.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from buytokens.domain.checkout import Delivery, ReceivedEvent
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate, StoreCorrupted, StoreUnavailable
from buytokens.domain.events import AttemptOutcome, DisputeState
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry
from buytokens.domain.money import Money
from buytokens.domain.purchases import DisputeRecord, Purchase, PurchaseStatus
from buytokens.domain.users import canonical_user_id
from buytokens.ports.checkout import KeyReservation
from buytokens.ports.clock import Clock

_MIGRATIONS: tuple[str, ...] = (
    # 1: purchases, ledger, balances
    """
    CREATE TABLE purchases (
        payment_intent_id TEXT PRIMARY KEY,
        user_id TEXT,
        package_id TEXT,
        tokens INTEGER NOT NULL,
        amount INTEGER,
        currency TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 0),
        status TEXT NOT NULL,
        succeeded INTEGER NOT NULL,
        attempt TEXT,
        attempt_at TEXT,
        amount_refunded INTEGER NOT NULL,
        disputes TEXT NOT NULL,
        review_reason TEXT,
        tokens_credited INTEGER NOT NULL,
        tokens_refunded INTEGER NOT NULL,
        tokens_held INTEGER NOT NULL
    );
    CREATE INDEX purchases_by_user ON purchases (user_id, created_at);
    CREATE INDEX purchases_by_status ON purchases (status);
    CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        entry_key TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        requested INTEGER NOT NULL,
        applied INTEGER NOT NULL,
        shortfall INTEGER NOT NULL CHECK (shortfall >= 0),
        balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
        payment_intent_id TEXT,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX ledger_by_user ON ledger (user_id, seq);
    CREATE TABLE balances (
        user_id TEXT PRIMARY KEY,
        token_credits INTEGER NOT NULL CHECK (token_credits >= 0),
        updated_at TEXT NOT NULL
    );
    """,
    # 2: idempotency keys of checkout requests, and the audit trail of webhook events
    """
    CREATE TABLE checkout_keys (
        user_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        reserved_at TEXT NOT NULL,
        payment_intent_id TEXT,
        PRIMARY KEY (user_id, idempotency_key)
    );
    CREATE TABLE webhook_events (
        event_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        payment_intent_id TEXT,
        disposition TEXT NOT NULL,
        first_received_at TEXT NOT NULL,
        last_received_at TEXT NOT NULL,
        deliveries INTEGER NOT NULL
    );
    """,
    # 3: a purchase's own ledger entries, read to settle its disputes
    """
    CREATE INDEX ledger_by_payment_intent ON ledger (payment_intent_id, seq);
    """,
    # 4: redemption codes, by digest (never the code); see adapters/sqlite_codes.py
    """
    CREATE TABLE codes (
        digest TEXT PRIMARY KEY,
        hint TEXT NOT NULL,
        kind TEXT NOT NULL,
        tokens INTEGER NOT NULL CHECK (tokens > 0),
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        payment_intent_id TEXT,
        buyer_id TEXT,
        redeemed_by TEXT,
        redeemed_at TEXT,
        credited INTEGER NOT NULL DEFAULT 0 CHECK (credited = 0 OR redeemed_by IS NOT NULL)
    );
    CREATE INDEX codes_by_created ON codes (created_at);
    CREATE INDEX codes_uncredited ON codes (redeemed_at)
        WHERE redeemed_by IS NOT NULL AND credited = 0;
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)

_PURCHASE_COLUMNS = (
    "payment_intent_id, user_id, package_id, tokens, amount, currency, created_at, updated_at, "
    "version, status, succeeded, attempt, attempt_at, amount_refunded, disputes, review_reason, "
    "tokens_credited, tokens_refunded, tokens_held"
)
_LEDGER_COLUMNS = (
    "entry_key, user_id, kind, requested, applied, shortfall, balance_after, payment_intent_id, "
    "reason, created_at"
)
_INSERT_PURCHASE = f"INSERT INTO purchases ({_PURCHASE_COLUMNS}) VALUES ({', '.join('?' * 19)})"  # noqa: S608
_UPDATE_PURCHASE = (
    "UPDATE purchases SET user_id = ?2, package_id = ?3, tokens = ?4, amount = ?5, currency = ?6, "
    "created_at = ?7, updated_at = ?8, version = ?9, status = ?10, succeeded = ?11, attempt = ?12, "
    "attempt_at = ?13, amount_refunded = ?14, disputes = ?15, review_reason = ?16, "
    "tokens_credited = ?17, tokens_refunded = ?18, tokens_held = ?19 "
    "WHERE payment_intent_id = ?1 AND version = ?20"
)
_INSERT_ENTRY = f"INSERT INTO ledger ({_LEDGER_COLUMNS}) VALUES ({', '.join('?' * 10)})"  # noqa: S608
_UPSERT_BALANCE = (
    "INSERT INTO balances (user_id, token_credits, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET token_credits = excluded.token_credits, "
    "updated_at = excluded.updated_at"
)


T = TypeVar("T")

# Enough to share one fsync among every request a busy server has in flight.
MAX_BATCH = 64


class _Write(Generic[T]):
    """One queued write and, once its batch is committed, what came of it."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], T]) -> None:
        self.work = work
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SqliteDatabase:
    """One SQLite file: a reading connection per thread, one group-committing writer.

    ``connection_factory`` is the ``sqlite3.Connection`` subclass to connect with
    (tracing and fault injection use it).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 10_000,
        connection_factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        self.path = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._factory = connection_factory
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Write[Any] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._migrate(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"cannot prepare SQLite store {self.path}: {exc}") from exc
            raise

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000,
                factory=self._factory,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's reading connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Finish the queued writes, stop the writer and close every connection."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=60)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a durable write transaction and return what it returned.

        ``work`` runs on the writer thread, inside its own savepoint of a
        transaction it may share with other callers'; whatever it raises comes back
        here, with its writes undone and theirs kept. This returns only after the
        COMMIT is on disk; if the commit fails, every write of the batch fails.
        """
        write = _Write(work)
        self._start_writer()
        self._queue.put(write)
        write.done.wait()
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[return-value]

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_batches, name=f"sqlite-writer {self.path}", daemon=True
                )
                self._writer.start()

    def _write_batches(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                conn = conn or self._open()
                self._commit(conn, batch)
            except BaseException as exc:  # the writer must outlive any batch
                for write in batch:
                    write.error = write.error or exc
            finally:
                for write in batch:
                    write.done.set()
            if stop:
                return

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[_Write[Any]]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite store is busy: {exc}") from exc
        try:
            for index, write in enumerate(batch):
                conn.execute(f"SAVEPOINT w{index}")
                try:
                    write.result = write.work(conn)
                except Exception as exc:  # handed back to that write's caller
                    conn.execute(f"ROLLBACK TO w{index}")
                    write.error = exc
                conn.execute(f"RELEASE w{index}")
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except BaseException:  # noqa: S110 - the original failure is what callers need
                pass
            # Writes that had succeeded are lost with the transaction: they fail too.
            for write in batch:
                if write.error is None:
                    write.error = exc
                    write.result = None

    def read(self, sql: str, params: Sequence[object]) -> list[Any]:
        """Run one query outside any write transaction."""
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """Translate sqlite3 errors escaping a write into the store errors."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise StoreCorrupted(f"SQLite store rejected a write: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite write failed: {exc}") from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreCorrupted(
                f"{self.path} has schema version {version}, newer than this buytokens "
                f"({SCHEMA_VERSION}); upgrade buytokens"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


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
        self._read = self.database.read

    @property
    def path(self) -> str:
        """The database file."""
        return self.database.path

    def close(self) -> None:
        """Close the file's connections."""
        self.database.close()

    # -- BalanceRepository ----------------------------------------------------

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        rows = self._read(
            f"SELECT {_PURCHASE_COLUMNS} FROM purchases WHERE payment_intent_id = ?",  # noqa: S608
            (payment_intent_id,),
        )
        return _purchase_from_row(rows[0]) if rows else None

    def add_purchase(self, purchase: Purchase) -> Purchase:
        def add(conn: sqlite3.Connection) -> Purchase:
            row = conn.execute(
                f"SELECT {_PURCHASE_COLUMNS} FROM purchases WHERE payment_intent_id = ?",  # noqa: S608
                (purchase.payment_intent_id,),
            ).fetchone()
            if row is not None:
                return _purchase_from_row(row)
            conn.execute(_INSERT_PURCHASE, _purchase_row(purchase))
            return purchase

        with self.database.guarded():
            return self.database.transact(add)

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        purchase = transition.purchase

        def store(conn: sqlite3.Connection) -> tuple[LedgerEntry, ...]:
            try:
                if transition.expected_version is None:
                    conn.execute(_INSERT_PURCHASE, _purchase_row(purchase))
                else:
                    cursor = conn.execute(
                        _UPDATE_PURCHASE, (*_purchase_row(purchase), transition.expected_version)
                    )
                    if cursor.rowcount != 1:
                        raise ConcurrentUpdate(
                            f"purchase {purchase.payment_intent_id} is no longer at version "
                            f"{transition.expected_version}"
                        )
                entries = tuple(self._apply(conn, change) for change in transition.changes)
                if transition.delivery is not None:
                    conn.execute(_RECORD_EVENT, _delivery_row(transition.delivery))
                return entries
            except sqlite3.IntegrityError as exc:
                raise ConcurrentUpdate(
                    f"purchase {purchase.payment_intent_id} was changed concurrently: {exc}"
                ) from exc

        with self.database.guarded():
            return self.database.transact(store)

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        def adjust(conn: sqlite3.Connection) -> LedgerEntry:
            row = conn.execute(
                f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE entry_key = ?",  # noqa: S608
                (change.key,),
            ).fetchone()
            if row is not None:
                return _entry_from_row(row)
            return self._apply(conn, change)

        with self.database.guarded():
            return self.database.transact(adjust)

    def _apply(self, conn: sqlite3.Connection, change: LedgerChange) -> LedgerEntry:
        row = conn.execute(
            "SELECT token_credits FROM balances WHERE user_id = ?", (change.user_id,)
        ).fetchone()
        entry = LedgerEntry.from_change(change, row[0] if row else 0, self._clock.now())
        conn.execute(_INSERT_ENTRY, _entry_row(entry))
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
            f"SELECT {_PURCHASE_COLUMNS} FROM purchases WHERE user_id = ? "  # noqa: S608
            "ORDER BY created_at DESC, payment_intent_id DESC LIMIT ?",
            (user_id, limit),
        )
        return [_purchase_from_row(row) for row in rows]

    def ledger(self, user_id: str, limit: int = 100) -> Sequence[LedgerEntry]:
        user_id = canonical_user_id(user_id)
        rows = self._read(
            f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE user_id = ? "  # noqa: S608
            "ORDER BY seq DESC LIMIT ?",
            (user_id, limit),
        )
        return [_entry_from_row(row) for row in rows]

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        rows = self._read(
            f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE payment_intent_id = ? "  # noqa: S608
            "ORDER BY seq",
            (payment_intent_id,),
        )
        return [_entry_from_row(row) for row in rows]

    def flagged_purchases(self, limit: int = 100) -> Sequence[Purchase]:
        rows = self._read(
            f"SELECT {_PURCHASE_COLUMNS} FROM purchases WHERE status = ? "  # noqa: S608
            "ORDER BY updated_at, payment_intent_id LIMIT ?",
            (PurchaseStatus.NEEDS_REVIEW.value, limit),
        )
        return [_purchase_from_row(row) for row in rows]

    def ledger_sum(self, user_id: str) -> int:
        """The sum of the user's applied ledger deltas (equals the balance in this store)."""
        rows = self._read(
            "SELECT COALESCE(SUM(applied), 0) FROM ledger WHERE user_id = ?", (user_id,)
        )
        return int(rows[0][0])


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _purchase_row(p: Purchase) -> tuple[object, ...]:
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


def _purchase_from_row(row: Sequence[Any]) -> Purchase:
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


def _entry_row(e: LedgerEntry) -> tuple[object, ...]:
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


def _entry_from_row(row: Sequence[Any]) -> LedgerEntry:
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


class SqliteCheckoutKeys:
    """CheckoutKeys in the same SQLite file; the primary key makes a reservation atomic."""

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
                return KeyReservation(row[0], datetime.fromisoformat(row[1]), row[2])
            conn.execute(
                "INSERT INTO checkout_keys (user_id, idempotency_key, fingerprint, reserved_at) "
                "VALUES (?, ?, ?, ?)",
                (user_id, key, fingerprint, at.isoformat()),
            )
            return None

        with self._db.guarded():
            return self._db.transact(reserve)

    def complete(self, user_id: str, key: str, payment_intent_id: str) -> None:
        self._execute(
            "UPDATE checkout_keys SET payment_intent_id = ? "
            "WHERE user_id = ? AND idempotency_key = ?",
            (payment_intent_id, user_id, key),
        )

    def release(self, user_id: str, key: str) -> None:
        self._execute(
            "DELETE FROM checkout_keys WHERE user_id = ? AND idempotency_key = ? "
            "AND payment_intent_id IS NULL",
            (user_id, key),
        )

    def _execute(self, sql: str, params: Sequence[object]) -> None:
        with self._db.guarded():
            self._db.transact(lambda conn: conn.execute(sql, params))


_RECORD_EVENT = (
    "INSERT INTO webhook_events (event_id, type, payment_intent_id, disposition, "
    "first_received_at, last_received_at, deliveries) VALUES (?, ?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (event_id) DO UPDATE SET deliveries = deliveries + 1, "
    "last_received_at = excluded.last_received_at, disposition = excluded.disposition"
)


def _delivery_row(delivery: Delivery) -> tuple[object, ...]:
    at = delivery.received_at.isoformat()
    return (
        delivery.event_id,
        delivery.event_type,
        delivery.payment_intent_id,
        delivery.disposition,
        at,
        at,
    )


class SqliteEventJournal:
    """EventJournal in the same SQLite file, one row per event id."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def record(self, event: ReceivedEvent, disposition: str, at: datetime) -> None:
        params = _delivery_row(Delivery.of(event, disposition, at))
        with self._db.guarded():
            self._db.transact(lambda conn: conn.execute(_RECORD_EVENT, params))

    def deliveries(self, event_id: str) -> tuple[str, int] | None:
        """The last disposition and the number of deliveries of one event."""
        rows = self._db.read(
            "SELECT disposition, deliveries FROM webhook_events WHERE event_id = ?", (event_id,)
        )
        return (str(rows[0][0]), int(rows[0][1])) if rows else None
