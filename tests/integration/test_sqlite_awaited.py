"""The SQLite store's awaitable path: read, decide and write in one of the writer's transactions.

The web app credits through it (``AwaitableTransactions``); these tests hold it
to the rules the thread path keeps: exactly once under crashes and concurrency,
an answer only after the COMMIT, a failing write spoiling no other.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.system import SystemClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.checkout import ReceivedEvent
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.events import ChargeRefunded, PaymentEvent, PaymentSucceeded
from buytokens.domain.money import Money
from buytokens.ports.balances import AwaitableTransactions
from buytokens.services.crediting import (
    CreditingDependencies,
    apply_payment_event,
    apply_payment_event_awaiting,
)
from tests.support.crashes import CrashAt, SimulatedCrash, crashing_connection

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PACKAGE = DEFAULT_CATALOGUE.get("package_1m")
CRASH = CrashAt()
CrashingConnection = crashing_connection(CRASH)


def _succeeded(pi: str = "pi_1", user: str = "alice") -> PaymentSucceeded:
    return PaymentSucceeded(f"evt_{pi}", pi, PACKAGE.price, user, PACKAGE.id, T0)


def _deps(store: SqliteBalanceRepository) -> CreditingDependencies:
    return CreditingDependencies(store, DEFAULT_CATALOGUE, FixedClock(T0))


def _apply_awaiting(store: SqliteBalanceRepository, event: PaymentEvent) -> Disposition:
    async def run() -> Disposition:
        applied = await apply_payment_event_awaiting(_deps(store), store, event)
        return applied.disposition

    return asyncio.run(run())


def test_the_sqlite_store_transacts_awaitably(tmp_path: Path) -> None:
    """The web app takes the awaitable path only for a store that has it."""
    store = SqliteBalanceRepository(tmp_path / "a.sqlite3", SystemClock())
    assert isinstance(store, AwaitableTransactions)
    store.close()


HISTORIES: dict[str, list[PaymentEvent]] = {
    "success": [_succeeded()],
    "refund_after_success": [
        _succeeded(),
        ChargeRefunded("evt_rf", "pi_1", Money(2_750, "cny"), T0),
    ],
}


@pytest.mark.parametrize("history_name", sorted(HISTORIES))
def test_a_crash_at_any_statement_of_the_awaited_path_then_redelivery_credits_once(
    tmp_path: Path, history_name: str
) -> None:
    """Kill the writer at every statement of the last event's awaited application, redeliver."""
    history = HISTORIES[history_name]
    CRASH.arm(None)
    counting = SqliteBalanceRepository(
        tmp_path / "count.sqlite3", FixedClock(T0), connection_factory=CrashingConnection
    )
    for event in history[:-1]:
        apply_payment_event(_deps(counting), event)
    CRASH.arm(None)
    _apply_awaiting(counting, history[-1])
    total = CRASH.count
    counting.close()
    assert total >= 5  # BEGIN, the purchase read, its write, ledger, balance, journal, COMMIT
    expected = {"success": PACKAGE.tokens, "refund_after_success": PACKAGE.tokens // 2}
    for crash_at in range(1, total + 1):
        path = tmp_path / f"crash-{crash_at}.sqlite3"
        CRASH.arm(None)
        store = SqliteBalanceRepository(path, FixedClock(T0), connection_factory=CrashingConnection)
        for event in history[:-1]:
            apply_payment_event(_deps(store), event)
        CRASH.arm(crash_at)
        with pytest.raises(SimulatedCrash):
            _apply_awaiting(store, history[-1])
        CRASH.arm(None)
        store.close()

        restarted = SqliteBalanceRepository(path, FixedClock(T0))
        for _ in range(2):
            _apply_awaiting(restarted, history[-1])
        assert restarted.balance("alice") == expected[history_name], crash_at
        assert restarted.ledger_sum("alice") == expected[history_name]
        assert len([e for e in restarted.ledger("alice") if e.key == "purchase:pi_1"]) == 1
        restarted.close()


def test_concurrent_deliveries_from_a_loop_and_another_writer_credit_once(tmp_path: Path) -> None:
    """Twenty awaited deliveries of one event race ten through a second store on the file
    (another process's writer): one credit, and every delivery is journalled."""
    path = tmp_path / "race.sqlite3"
    store = SqliteBalanceRepository(path, FixedClock(T0))
    other = SqliteBalanceRepository(path, FixedClock(T0))
    event = _succeeded()
    received = ReceivedEvent("evt_pi_1", "payment_intent.succeeded", "pi_1", event)
    start = threading.Event()
    other_results: list[Disposition] = []

    def deliver_through_other() -> None:
        start.wait(timeout=30)
        other_results.extend(
            apply_payment_event(_deps(other), event, received=received).disposition
            for _ in range(10)
        )

    async def deliver_awaiting() -> list[Disposition]:
        start.set()
        applied = await asyncio.gather(
            *(
                apply_payment_event_awaiting(_deps(store), store, event, received=received)
                for _ in range(20)
            )
        )
        return [a.disposition for a in applied]

    thread = threading.Thread(target=deliver_through_other)
    thread.start()
    results = asyncio.run(deliver_awaiting())
    thread.join(timeout=60)
    dispositions = results + other_results
    assert len(dispositions) == 30
    assert dispositions.count(Disposition.APPLIED) == 1
    assert store.balance("alice") == PACKAGE.tokens
    assert store.ledger_sum("alice") == PACKAGE.tokens
    rows = store.database.read(
        "SELECT deliveries FROM webhook_events WHERE event_id = ?", ("evt_pi_1",)
    )
    assert rows[0][0] == 30
    store.close()
    other.close()


class CountingConnection(sqlite3.Connection):
    """Counts the COMMITs and SAVEPOINTs sent to the file."""

    commits = 0
    savepoints = 0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql == "COMMIT":
            CountingConnection.commits += 1
        elif sql.startswith("SAVEPOINT"):
            CountingConnection.savepoints += 1
        return super().execute(sql, parameters)


def test_credits_a_loop_awaits_in_one_iteration_share_one_commit(tmp_path: Path) -> None:
    """What a loop queues during one iteration reaches the writer as one batch: one COMMIT."""
    store = SqliteBalanceRepository(
        tmp_path / "group.sqlite3", FixedClock(T0), connection_factory=CountingConnection
    )
    CountingConnection.commits = 0

    async def credit_all() -> None:
        await asyncio.gather(
            *(
                apply_payment_event_awaiting(_deps(store), store, _succeeded(f"pi_{n}", f"u{n}"))
                for n in range(40)
            )
        )

    asyncio.run(credit_all())
    assert CountingConnection.commits == 1
    assert sum(store.balance(f"u{n}") for n in range(40)) == 40 * PACKAGE.tokens
    store.close()


def test_a_lone_write_takes_no_savepoint_and_a_failing_one_is_undone(tmp_path: Path) -> None:
    """A batch of one commits without a savepoint; what a failing write did is rolled back."""
    database = SqliteDatabase(tmp_path / "one.sqlite3", connection_factory=CountingConnection)
    CountingConnection.savepoints = 0

    def good(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO balances VALUES ('a', 1, 'now')")
        return "a"

    def bad(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO balances VALUES ('b', 2, 'now')")
        raise ConcurrentUpdate("this one loses")

    async def both() -> None:
        assert await database.transact_async(good) == "a"
        with pytest.raises(ConcurrentUpdate):
            await database.transact_async(bad)

    asyncio.run(both())
    assert database.transact(lambda conn: conn.execute("DELETE FROM balances").rowcount) == 1
    assert CountingConnection.savepoints == 0
    assert database.read("SELECT user_id FROM balances", ()) == []
    database.close()


def test_a_loop_hands_its_writes_over_once_per_iteration(tmp_path: Path) -> None:
    """Requests that do CPU work before writing (a signature check, a parse) still share
    one batch: the writer is woken once the loop's iteration is over, not at each write."""
    database = SqliteDatabase(tmp_path / "iter.sqlite3", connection_factory=CountingConnection)
    database.transact(lambda conn: None)  # the writer is started and waiting
    CountingConnection.commits = 0

    def insert(n: int) -> Callable[[sqlite3.Connection], int]:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO balances VALUES (?, ?, 'now')", (f"u{n}", n))
            return n

        return work

    async def request(n: int) -> int:
        deadline = time.perf_counter() + 0.002  # beyond the interpreter's switch interval
        while time.perf_counter() < deadline:
            pass
        return await database.transact_async(insert(n))

    async def all_of_them() -> list[int]:
        return await asyncio.gather(*(request(n) for n in range(20)))

    assert asyncio.run(all_of_them()) == list(range(20))
    assert CountingConnection.commits == 1
    database.close()


class StatementLog(sqlite3.Connection):
    """Keeps every statement sent to the file."""

    statements: ClassVar[list[str]] = []

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        StatementLog.statements.append(sql.split(" ", 1)[0])
        return super().execute(sql, parameters)


def test_a_lone_credit_with_its_journal_line_is_seven_statements(tmp_path: Path) -> None:
    """BEGIN, the purchase read, its insert, the balance added to and read back in one
    statement, the ledger entry, the journal line, COMMIT."""
    store = SqliteBalanceRepository(
        tmp_path / "count.sqlite3", FixedClock(T0), connection_factory=StatementLog
    )
    event = _succeeded()
    received = ReceivedEvent("evt_pi_1", "payment_intent.succeeded", "pi_1", event)
    store.database.transact(lambda conn: None)  # the writer's connection is open
    StatementLog.statements.clear()

    async def credit() -> Disposition:
        applied = await apply_payment_event_awaiting(_deps(store), store, event, received=received)
        return applied.disposition

    assert asyncio.run(credit()) == Disposition.APPLIED
    assert StatementLog.statements == [
        "BEGIN",
        "SELECT",
        "INSERT",
        "INSERT",
        "INSERT",
        "INSERT",
        "COMMIT",
    ]
    assert store.balance("alice") == PACKAGE.tokens
    assert [e.balance_after for e in store.ledger("alice")] == [PACKAGE.tokens]
    store.close()
