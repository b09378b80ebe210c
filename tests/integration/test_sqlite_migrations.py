"""The SQLite file's schema upgrades in place: an older file keeps every row and its meaning."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.sqlite.codec import INSERT_PURCHASE, purchase_row
from buytokens.adapters.sqlite.journal import record_delivery
from buytokens.adapters.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.checkout import Delivery
from buytokens.domain.events import PaymentSucceeded
from buytokens.domain.purchases import Purchase
from buytokens.services.crediting import CreditingDependencies, apply_payment_event
from tests.support.crashes import SimulatedCrash

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PACKAGE = DEFAULT_CATALOGUE.get("package_1m")
TABLES = ("purchases", "ledger", "balances", "webhook_events")

# (seq, key, user, kind, requested, applied, shortfall, balance after, intent, reason):
# seq as AUTOINCREMENT left it, with the gaps of entries whose transaction was undone.
OLD_LEDGER = (
    (1, "purchase:pi_a", "alice", "purchase", 1_000, 1_000, 0, 1_000, "pi_a", "bought p"),
    (2, "purchase:pi_b", "bob", "purchase", 500, 500, 0, 500, "pi_b", "bought p"),
    (5, "refund:pi_a:2", "alice", "refund", -400, -400, 0, 600, "pi_a", "refund of 40"),
    (6, "admin:k1", "bob", "admin", -800, -500, 300, 0, None, "clawback"),
    (9, "purchase:pi_c", "alice", "purchase", 1_000, 1_000, 0, 1_600, "pi_c", "bought p"),
)


def _version_7_file(path: Path) -> None:
    """A file as buytokens left it at schema version 7, with purchases, entries and events."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for script in MIGRATIONS[:7]:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 7")
    for n, (pi, user, flagged) in enumerate(
        (("pi_a", "alice", None), ("pi_b", "bob", "paid 1 cny"), ("pi_c", "alice", None))
    ):
        at = T0 + timedelta(minutes=n)
        purchase = Purchase(
            pi, user, PACKAGE.id, PACKAGE.tokens, PACKAGE.price, at, at, version=1,
            succeeded=True, review_reason=flagged,
        )  # fmt: skip
        conn.execute(INSERT_PURCHASE, purchase_row(purchase))
        record_delivery(conn, Delivery(f"evt_{pi}", "payment_intent.succeeded", pi, "applied", at))
    for seq, key, user, kind, requested, applied, shortfall, after, pi, reason in OLD_LEDGER:
        conn.execute(
            "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                key,
                user,
                kind,
                requested,
                applied,
                shortfall,
                after,
                pi,
                reason,
                T0.isoformat(),
            ),
        )
    conn.execute("INSERT INTO balances VALUES ('alice', 1600, ?), ('bob', 0, ?)", ("t", "t"))
    conn.execute("COMMIT")
    conn.close()


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES
        }
    finally:
        conn.close()


def _schema(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL"))
    finally:
        conn.close()


def test_a_version_7_file_upgrades_keeping_every_row_and_the_ledger_order(
    tmp_path: Path,
) -> None:
    """Every purchase, entry (with its seq), balance and journal line survives the upgrade."""
    path = tmp_path / "old.sqlite3"
    _version_7_file(path)
    before = _rows(path)

    store = SqliteBalanceRepository(path, FixedClock(T0))

    assert store.database.connection().execute("PRAGMA user_version").fetchone()[0] == 8
    assert _rows(path) == before
    assert [e.key for e in store.ledger("alice")] == [
        "purchase:pi_c",
        "refund:pi_a:2",
        "purchase:pi_a",
    ]
    assert [e.key for e in store.purchase_ledger("pi_a")] == ["purchase:pi_a", "refund:pi_a:2"]
    assert (store.balance("alice"), store.balance("bob")) == (1_600, 0)
    assert store.ledger_sum("alice") == 1_600
    assert [p.payment_intent_id for p in store.flagged_purchases()] == ["pi_b"]
    conn = store.database.connection()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


UPGRADE = [statement.strip() for statement in MIGRATIONS[7].split(";") if statement.strip()]


class DiesAtOneStatement(sqlite3.Connection):
    """The process dies as it sends ``statement`` to the file."""

    statement: ClassVar[str] = ""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql.strip() == DiesAtOneStatement.statement:
            raise SimulatedCrash(sql)
        return super().execute(sql, parameters)


@pytest.mark.parametrize("step", range(len(UPGRADE)))
def test_a_crash_during_the_upgrade_leaves_the_old_file_whole(tmp_path: Path, step: int) -> None:
    """The upgrade is one transaction: a crash at any of its statements leaves version 7 and
    every row, and the next start upgrades it."""
    path = tmp_path / "old.sqlite3"
    _version_7_file(path)
    before = _rows(path)
    DiesAtOneStatement.statement = UPGRADE[step]
    with pytest.raises(SimulatedCrash):
        SqliteBalanceRepository(path, FixedClock(T0), connection_factory=DiesAtOneStatement)

    assert _rows(path) == before
    assert "AUTOINCREMENT" in _schema(path)["ledger"]
    store = SqliteBalanceRepository(path, FixedClock(T0))
    assert _rows(path) == before
    assert "AUTOINCREMENT" not in _schema(path)["ledger"]
    assert store.balance("alice") == 1_600
    store.close()


def test_an_entry_after_the_upgrade_follows_every_older_one(tmp_path: Path) -> None:
    """A new entry's seq is past the largest old one, so it is the newest in the history."""
    path = tmp_path / "old.sqlite3"
    _version_7_file(path)
    store = SqliteBalanceRepository(path, FixedClock(T0))
    event = PaymentSucceeded("evt_pi_d", "pi_d", PACKAGE.price, "alice", PACKAGE.id, T0)

    apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, FixedClock(T0)), event)

    seqs = store.database.read("SELECT seq FROM ledger ORDER BY seq", ())
    assert [row[0] for row in seqs] == [1, 2, 5, 6, 9, 10]
    assert store.ledger("alice")[0].key == "purchase:pi_d"
    assert store.balance("alice") == 1_600 + PACKAGE.tokens == store.ledger_sum("alice")
    store.close()


def test_an_entry_writes_no_sequence_and_only_review_is_indexed_by_status(
    tmp_path: Path,
) -> None:
    """The ledger has no AUTOINCREMENT (no sqlite_sequence row per entry) and a purchase write
    updates a status index only for a purchase in review."""
    path = tmp_path / "new.sqlite3"
    store = SqliteBalanceRepository(path, FixedClock(T0))
    event = PaymentSucceeded("evt_pi_1", "pi_1", PACKAGE.price, "alice", PACKAGE.id, T0)
    apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, FixedClock(T0)), event)

    schema = _schema(path)
    assert "AUTOINCREMENT" not in schema["ledger"]
    assert store.database.read("SELECT * FROM sqlite_sequence WHERE name = 'ledger'", ()) == []
    assert "purchases_by_status" not in schema
    assert "WHERE status = 'needs_review'" in schema["purchases_in_review"]
    assert SCHEMA_VERSION == 8
    store.close()
