"""The SQLite file's schema: numbered migrations, applied in order on first use."""

from __future__ import annotations

import sqlite3

from buytokens.domain.errors import StoreCorrupted

MIGRATIONS: tuple[str, ...] = (
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
    # 4: redemption codes, by digest (never the code); see adapters/sqlite/codes.py
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
    # 5: gift purchases (credited to whoever redeems their code)
    """
    ALTER TABLE purchases ADD COLUMN gift INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE purchases ADD COLUMN redeemed_by TEXT;
    ALTER TABLE purchases ADD COLUMN redeemed_at TEXT;
    ALTER TABLE purchases ADD COLUMN void_reason TEXT;
    """,
    # 6: promo codes and their uses; see adapters/sqlite/promos.py
    """
    CREATE TABLE promo_codes (
        code TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('percent', 'amount')),
        value INTEGER NOT NULL CHECK (value > 0),
        currency TEXT,
        package_ids TEXT,
        max_redemptions INTEGER CHECK (max_redemptions > 0),
        per_user INTEGER NOT NULL CHECK (per_user > 0),
        expires_at TEXT,
        created_at TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE promo_uses (
        checkout_id TEXT PRIMARY KEY,
        code TEXT NOT NULL,
        user_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('held', 'paid', 'released')),
        held_until TEXT NOT NULL,
        ticket INTEGER,
        user_ticket INTEGER,
        payment_intent_id TEXT
    );
    CREATE INDEX promo_uses_live ON promo_uses (code) WHERE state <> 'released';
    CREATE UNIQUE INDEX promo_uses_ticket ON promo_uses (code, ticket)
        WHERE state <> 'released' AND ticket IS NOT NULL;
    CREATE UNIQUE INDEX promo_uses_user_ticket ON promo_uses (code, user_id, user_ticket)
        WHERE state <> 'released';
    """,
    # 7: promo uses retired for another checkout whose intents are still to be canceled
    """
    ALTER TABLE promo_uses ADD COLUMN cancel_pending INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX promo_uses_cancel_pending ON promo_uses (checkout_id) WHERE cancel_pending = 1;
    """,
    # 8: the ledger rebuilt without AUTOINCREMENT, which wrote sqlite_sequence with every entry.
    # Every entry keeps its seq; entries are never deleted, so a new entry's seq (the largest
    # plus one) still follows all the others. Of the purchases' statuses only review is ever
    # looked up: a partial index on those replaces the index every purchase write updated.
    """
    DROP INDEX ledger_by_user;
    DROP INDEX ledger_by_payment_intent;
    ALTER TABLE ledger RENAME TO ledger_v7;
    CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY,
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
    INSERT INTO ledger (seq, entry_key, user_id, kind, requested, applied, shortfall,
        balance_after, payment_intent_id, reason, created_at)
        SELECT seq, entry_key, user_id, kind, requested, applied, shortfall,
        balance_after, payment_intent_id, reason, created_at FROM ledger_v7 ORDER BY seq;
    DROP TABLE ledger_v7;
    CREATE INDEX ledger_by_user ON ledger (user_id, seq);
    CREATE INDEX ledger_by_payment_intent ON ledger (payment_intent_id, seq);
    DROP INDEX purchases_by_status;
    CREATE INDEX purchases_in_review ON purchases (updated_at, payment_intent_id)
        WHERE status = 'needs_review';
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file up to ``SCHEMA_VERSION`` inside the caller's write transaction.

    Raises ``StoreCorrupted`` for a file written by a newer buytokens.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreCorrupted(
            f"{path} has schema version {version}, newer than this buytokens "
            f"({SCHEMA_VERSION}); upgrade buytokens"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
