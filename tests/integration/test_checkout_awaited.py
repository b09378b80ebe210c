"""Creating an intent on SQLite with the store write awaited on the event loop.

The web app runs the Stripe call on a provider-lane thread and then awaits the
pending purchase's write through the store's writer (``prepare_payment_intent``,
then ``record_payment_intent_awaiting``). These tests hold that path to the
rules of the thread path: nothing answered before the purchase is on disk, a
crash in between loses nothing a retry cannot find again, a failed write is a
clear error that leaves the key free, and one key makes one intent.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.sqlite.checkout_keys import SqliteCheckoutKeys
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.domain.checkout import IntentRequest, IntentSnapshot
from buytokens.domain.errors import StoreUnavailable
from buytokens.ports.checkout import AwaitableCheckoutKeys
from buytokens.services.buying import (
    STALE_RESERVATION,
    BuyingDependencies,
    CreatedIntent,
    RequestInProgress,
    prepare_payment_intent,
    record_payment_intent_awaiting,
)
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.crashes import CrashAt, SimulatedCrash, crashing_connection
from tests.support.use_cases import wire


class _CountingGateway(InMemoryPaymentGateway):
    """The Stripe twin, counting creation calls and the intents they gave, and taking a moment
    over each call (so that concurrent requests overlap)."""

    def __init__(self, clock: FixedClock, pause: float = 0.0) -> None:
        super().__init__(clock=clock)
        self.creations = 0
        self.intents: set[str] = set()
        self.pause = pause

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        self.creations += 1
        time.sleep(self.pause)
        snapshot = super().create_payment_intent(request)
        self.intents.add(snapshot.id)
        return snapshot


class _Process:
    """One server process on the file: its database, store, keys and buying dependencies."""

    def __init__(
        self,
        path: Path,
        gateway: InMemoryPaymentGateway,
        clock: FixedClock,
        crash: CrashAt | None = None,
    ) -> None:
        factory = sqlite3.Connection if crash is None else crashing_connection(crash)
        self.database = SqliteDatabase(path, connection_factory=factory)
        self.store = SqliteBalanceRepository(self.database, clock)
        self.keys = SqliteCheckoutKeys(self.database)
        self.buying: BuyingDependencies = wire(
            gateway, clock, store=self.store, keys=self.keys
        ).buying

    async def create(self, key: str | None = "k1", user: str = "alice") -> CreatedIntent:
        """What the route does: prepare on a thread, then await the write on this loop."""
        prepared = await asyncio.to_thread(
            prepare_payment_intent,
            self.buying,
            user,
            "package_100k",
            "card",
            idempotency_key=key,
        )
        return await record_payment_intent_awaiting(self.buying, self.store, prepared)

    def purchases(self, user: str = "alice") -> list[str]:
        return [p.payment_intent_id for p in self.store.purchases(user)]


@pytest.fixture
def clock() -> FixedClock:
    """A stopped clock."""
    return FixedClock()


def test_the_sqlite_keys_complete_and_release_awaitably(tmp_path: Path, clock: FixedClock) -> None:
    """The route finds the awaitable key methods on the SQLite keys."""
    process = _Process(tmp_path / "bt.sqlite3", InMemoryPaymentGateway(clock=clock), clock)
    assert isinstance(process.keys, AwaitableCheckoutKeys)
    process.database.close()


def test_the_answer_follows_the_durable_write(tmp_path: Path, clock: FixedClock) -> None:
    """When the awaited create returns, its pending purchase and completed key are on disk."""
    gateway = _CountingGateway(clock)
    process = _Process(tmp_path / "bt.sqlite3", gateway, clock)
    created = asyncio.run(process.create())
    process.database.close()
    reopened = _Process(tmp_path / "bt.sqlite3", gateway, clock)
    assert reopened.purchases() == [created.snapshot.id]
    assert reopened.store.get_purchase(created.snapshot.id).price == created.amount  # type: ignore[union-attr]
    again = asyncio.run(reopened.create())  # the completed key: no second intent
    assert again.snapshot.id == created.snapshot.id
    assert gateway.creations == 1
    reopened.database.close()


def test_a_crash_between_stripes_answer_and_the_write_loses_nothing(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The process dies after Stripe created the intent, before its purchase is written.

    No answer was sent and nothing is in the file; once the reservation is stale,
    the same key takes the request over and comes back to the same intent,
    which is then recorded once.
    """
    gateway = _CountingGateway(clock)
    crash = CrashAt()  # counts only, until armed
    dying = _Process(tmp_path / "bt.sqlite3", gateway, clock, crash)

    async def create_then_die() -> CreatedIntent:
        prepared = await asyncio.to_thread(
            prepare_payment_intent, dying.buying, "alice", "package_100k", "card",
            idempotency_key="k1",
        )  # fmt: skip
        crash.arm(1)  # Stripe has answered; the next statement of the process is its last
        return await record_payment_intent_awaiting(dying.buying, dying.store, prepared)

    with pytest.raises(SimulatedCrash):
        asyncio.run(create_then_die())
    (first_intent,) = gateway.intents

    restarted = _Process(tmp_path / "bt.sqlite3", gateway, clock)
    assert restarted.purchases() == []
    with pytest.raises(RequestInProgress):  # the dead request's reservation, not yet stale
        asyncio.run(restarted.create())
    clock.advance(STALE_RESERVATION + timedelta(seconds=1))
    created = asyncio.run(restarted.create())
    assert created.snapshot.id == first_intent
    assert restarted.purchases() == [first_intent]
    assert asyncio.run(restarted.create()).snapshot.id == first_intent
    assert len(gateway.intents) == 1
    restarted.database.close()


def test_a_failed_write_is_a_clear_error_and_frees_the_key(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The purchase's INSERT fails: StoreUnavailable naming the cause, nothing written, and the
    key released, so that a retry with it records the same intent."""
    gateway = _CountingGateway(clock)
    failing = CrashAt(error=lambda: sqlite3.OperationalError("disk I/O error"))
    process = _Process(tmp_path / "bt.sqlite3", gateway, clock, failing)

    async def create_with_failing_insert() -> CreatedIntent:
        prepared = await asyncio.to_thread(
            prepare_payment_intent, process.buying, "alice", "package_100k", "card",
            idempotency_key="k1",
        )  # fmt: skip
        failing.arm(3)  # BEGIN IMMEDIATE, the purchase's SELECT, then its INSERT fails
        return await record_payment_intent_awaiting(process.buying, process.store, prepared)

    with pytest.raises(StoreUnavailable, match="SQLite write failed: disk I/O error"):
        asyncio.run(create_with_failing_insert())
    assert process.purchases() == []
    created = asyncio.run(process.create())  # not RequestInProgress: the key was released
    assert process.purchases() == [created.snapshot.id]
    assert len(gateway.intents) == 1
    process.database.close()


def test_concurrent_creates_with_one_key_make_one_intent(tmp_path: Path, clock: FixedClock) -> None:
    """Twelve requests with one key at once: one intent, one purchase; every request that is
    answered gets that intent, the others are told the first is still running."""
    gateway = _CountingGateway(clock, pause=0.02)
    process = _Process(tmp_path / "bt.sqlite3", gateway, clock)

    async def race() -> list[CreatedIntent | BaseException]:
        return await asyncio.gather(*(process.create() for _ in range(12)), return_exceptions=True)

    outcomes = asyncio.run(race())
    created = [o for o in outcomes if isinstance(o, CreatedIntent)]
    refused = [o for o in outcomes if not isinstance(o, CreatedIntent)]
    assert created
    assert all(isinstance(o, RequestInProgress) for o in refused), refused
    assert {c.snapshot.id for c in created} == {next(iter(gateway.intents))}
    assert gateway.creations == 1
    assert process.purchases() == [created[0].snapshot.id]
    assert asyncio.run(process.create()).snapshot.id == created[0].snapshot.id
    process.database.close()
