"""The embedded store under crashes, many threads and many processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.schema import SCHEMA_VERSION
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.system import SystemClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.errors import ConcurrentUpdate, StoreCorrupted
from buytokens.domain.events import ChargeRefunded, PaymentEvent, PaymentSucceeded
from buytokens.domain.money import Money
from buytokens.services.crediting import CreditingDependencies, apply_payment_event
from tests.support.crashes import CrashAt, SimulatedCrash, crashing_connection

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PACKAGE = DEFAULT_CATALOGUE.get("package_1m")


def _succeeded(pi: str = "pi_1", user: str = "alice") -> PaymentSucceeded:
    return PaymentSucceeded(f"evt_{pi}", pi, PACKAGE.price, user, PACKAGE.id, T0)


CRASH = CrashAt()
CrashingConnection = crashing_connection(CRASH)


def _statements_to_apply(tmp_path: Path, history: list[PaymentEvent]) -> int:
    CRASH.arm(None)
    store = SqliteBalanceRepository(
        tmp_path / "count.sqlite3", FixedClock(T0), connection_factory=CrashingConnection
    )
    for event in history[:-1]:
        apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, FixedClock(T0)), event)
    CRASH.arm(None)
    apply_payment_event(
        CreditingDependencies(store, DEFAULT_CATALOGUE, FixedClock(T0)), history[-1]
    )
    store.close()
    return CRASH.count


HISTORIES = {
    "success": [_succeeded()],
    "refund_after_success": [
        _succeeded(),
        ChargeRefunded("evt_rf", "pi_1", Money(2_750, "cny"), T0),
    ],
}


@pytest.mark.parametrize("history_name", sorted(HISTORIES))
def test_a_crash_at_any_statement_then_redelivery_credits_exactly_once(
    tmp_path: Path, history_name: str
) -> None:
    """Kill the writer at every statement of the last event's application, restart, redeliver."""
    history = HISTORIES[history_name]
    total = _statements_to_apply(tmp_path, history)
    assert total >= 5  # a read, BEGIN, purchase write, ledger insert, balance upsert, COMMIT
    expected = {"success": PACKAGE.tokens, "refund_after_success": PACKAGE.tokens // 2}[
        history_name
    ]
    for crash_at in range(1, total + 1):
        path = tmp_path / f"crash-{crash_at}.sqlite3"
        clock = FixedClock(T0)
        CRASH.arm(None)
        store = SqliteBalanceRepository(path, clock, connection_factory=CrashingConnection)
        for event in history[:-1]:
            apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), event)
        CRASH.arm(crash_at)
        with pytest.raises(SimulatedCrash):
            apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), history[-1])
        CRASH.arm(None)
        store.close()  # the dead process's open transaction is discarded

        restarted = SqliteBalanceRepository(path, clock)
        for _ in range(2):
            apply_payment_event(
                CreditingDependencies(restarted, DEFAULT_CATALOGUE, clock), history[-1]
            )
        assert restarted.balance("alice") == expected, crash_at
        assert restarted.ledger_sum("alice") == expected
        credits = [e for e in restarted.ledger("alice") if e.key == "purchase:pi_1"]
        assert len(credits) == 1
        restarted.close()


def _deliver_in_process(path: str, start: Any) -> None:
    store = SqliteBalanceRepository(path, SystemClock())
    start.wait()
    for _ in range(5):
        apply_payment_event(
            CreditingDependencies(store, DEFAULT_CATALOGUE, SystemClock()), _succeeded()
        )
    store.close()


@pytest.mark.slow
def test_four_processes_delivering_the_same_success_credit_once(tmp_path: Path) -> None:
    """Separate processes on one file: the unique key and version check hold across them."""
    path = str(tmp_path / "procs.sqlite3")
    SqliteBalanceRepository(path, SystemClock()).close()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [context.Process(target=_deliver_in_process, args=(path, start)) for _ in range(4)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    store = SqliteBalanceRepository(path, SystemClock())
    assert store.balance("alice") == PACKAGE.tokens
    assert len(store.ledger("alice")) == 1
    store.close()


def test_the_store_is_durable_and_in_wal_mode(tmp_path: Path) -> None:
    """Commits are fsync'd (synchronous=FULL) in WAL mode with a busy timeout."""
    store = SqliteBalanceRepository(tmp_path / "pragmas.sqlite3", SystemClock())
    conn = store.database.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()


def test_a_balance_survives_a_restart(tmp_path: Path) -> None:
    """What was committed is there when the file is opened again."""
    path = tmp_path / "restart.sqlite3"
    first = SqliteBalanceRepository(path, SystemClock())
    apply_payment_event(
        CreditingDependencies(first, DEFAULT_CATALOGUE, SystemClock()), _succeeded()
    )
    first.close()
    second = SqliteBalanceRepository(path, SystemClock())
    assert second.balance("alice") == PACKAGE.tokens
    second.close()


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A schema newer than this code is an operator error, never silently used."""
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreCorrupted, match="newer than this buytokens"):
        SqliteBalanceRepository(path, SystemClock())


class CountingConnection(sqlite3.Connection):
    """Counts the COMMITs sent to the file."""

    commits = 0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql == "COMMIT":
            CountingConnection.commits += 1
        return super().execute(sql, parameters)


def test_concurrent_writes_share_commits_and_a_failing_one_spoils_none(tmp_path: Path) -> None:
    """Writes queued behind a running one commit together; one that raises is undone alone."""
    database = SqliteDatabase(tmp_path / "group.sqlite3", connection_factory=CountingConnection)
    CountingConnection.commits = 0
    started, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> str:
        started.set()
        release.wait(timeout=30)
        conn.execute("INSERT INTO balances VALUES ('slow', 1, 'now')")
        return "slow"

    def insert(n: int) -> Callable[[sqlite3.Connection], str]:
        def work(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO balances VALUES (?, ?, 'now')", (f"u{n}", n))
            if n == 3:
                raise ConcurrentUpdate("this one loses")
            return f"u{n}"

        return work

    first = threading.Thread(target=database.transact, args=(slow,))
    first.start()
    started.wait(timeout=30)
    results: dict[int, object] = {}

    def queue_write(n: int) -> None:
        try:
            results[n] = database.transact(insert(n))
        except ConcurrentUpdate as exc:
            results[n] = exc

    threads = [threading.Thread(target=queue_write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # let all eight queue behind the slow write
    release.set()
    for thread in [first, *threads]:
        thread.join(timeout=30)
    assert isinstance(results.pop(3), ConcurrentUpdate)
    assert results == {n: f"u{n}" for n in range(8) if n != 3}
    assert CountingConnection.commits <= 3  # the slow write's batch, then one for the queue
    rows = dict(database.read("SELECT user_id, token_credits FROM balances", ()))
    assert rows == {"slow": 1} | {f"u{n}": n for n in range(8) if n != 3}
    database.close()
