"""The MongoDB store survives a crash at any write, concurrency, and a failing server."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import PyMongoError, WriteConcernError

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.mongo.connection import MongoDatabase, connect_mongo
from buytokens.adapters.mongo.recovery import ADJUSTMENT_GRACE
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import Disposition, decide
from buytokens.domain.errors import ConfigurationError, StoreUnavailable
from buytokens.domain.events import ChargeRefunded
from buytokens.domain.ledger import EntryKind, LedgerChange
from buytokens.domain.money import Money
from tests.support.crashes import CrashAt, SimulatedCrash
from tests.support.mongo import (
    OCCURRED,
    USER,
    WRITES,
    InterceptingDatabase,
    assert_settled,
    deliver,
    succeeded,
)
from tests.support.stores import mongo_database


# Each scenario: (prepare on a healthy store, the operation a crash interrupts, the balance it
# leads to, and a probe telling whether the interrupted operation became durable).
def _credit(store: MongoBalanceRepository, clock: FixedClock) -> None:
    deliver(succeeded("pi_1"), store, clock)


def _refund(store: MongoBalanceRepository, clock: FixedClock) -> None:
    deliver(ChargeRefunded("evt_r", "pi_1", Money(500, "cny"), OCCURRED), store, clock)


def _grant(store: MongoBalanceRepository, _clock: FixedClock) -> None:
    store.record_adjustment(LedgerChange("admin:k1", USER, EntryKind.ADMIN, 700, reason="welcome"))


def _nothing(_store: MongoBalanceRepository, _clock: FixedClock) -> None:
    pass


def _purchase_at(version: int) -> Callable[[MongoDatabase], bool]:
    def probe(database: MongoDatabase) -> bool:
        stored = database.get_collection("buytokens_purchases").find_one({"_id": "pi_1"})
        return stored is not None and stored["version"] == version

    return probe


def _grant_reached_the_balance(database: MongoDatabase) -> bool:
    # A grant's caller finishes it; recovery only finishes one the balance already shows.
    applied = database.get_collection("transactions").find_one(
        {"buytokens.key": "admin:k1", "buytokens.state": "applied"}
    )
    marked = database.get_collection("balances").find_one({"buytokens.inflight.key": "admin:k1"})
    return applied is not None or marked is not None


SCENARIOS = {
    "credit": (_nothing, _credit, 0, 100_000, _purchase_at(1)),
    "refund": (_credit, _refund, 100_000, 50_000, _purchase_at(2)),
    "grant": (_nothing, _grant, 0, 700, _grant_reached_the_balance),
}


def _writes_of(scenario: str, clock: FixedClock) -> int:
    prepare, operation, *_ = SCENARIOS[scenario]
    counter = CrashAt(None, after=False)
    with mongo_database() as database:
        prepare(MongoBalanceRepository(database, clock), clock)
        operation(MongoBalanceRepository(InterceptingDatabase(database, counter), clock), clock)
    return counter.count


def _crash(database: MongoDatabase, scenario: str, n: int, after: bool, clock: FixedClock) -> None:
    prepare, operation, *_ = SCENARIOS[scenario]
    prepare(MongoBalanceRepository(database, clock), clock)
    crashing = MongoBalanceRepository(
        InterceptingDatabase(database, CrashAt(n, after=after)), clock
    )
    with pytest.raises(SimulatedCrash):
        operation(crashing, clock)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("after", [False, True], ids=["before-write", "after-write"])
def test_a_crash_at_any_write_is_finished_by_redelivery(
    scenario: str, after: bool, clock: FixedClock
) -> None:
    """Whatever write a crash interrupts, delivering again leaves exactly one application."""
    writes = _writes_of(scenario, clock)
    assert writes >= 5, "the write sequence is shorter than designed"
    _, operation, _, expected, _ = SCENARIOS[scenario]
    for n in range(1, writes + 1):
        with mongo_database() as database:
            _crash(database, scenario, n, after, clock)
            fresh = MongoBalanceRepository(database, clock)
            operation(fresh, clock)
            operation(fresh, clock)  # and once more, for good measure
            assert_settled(database, fresh, USER, expected)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("after", [False, True], ids=["before-write", "after-write"])
def test_a_crash_at_any_write_is_finished_by_the_recovery_pass(
    scenario: str, after: bool, clock: FixedClock
) -> None:
    """recover() completes what became durable before the crash; redelivery adds nothing."""
    writes = _writes_of(scenario, clock)
    _, operation, before, expected, durable = SCENARIOS[scenario]
    for n in range(1, writes + 1):
        with mongo_database() as database:
            _crash(database, scenario, n, after, clock)
            fresh = MongoBalanceRepository(database, clock)
            reached = durable(database)
            clock.advance(ADJUSTMENT_GRACE)  # an interrupted grant counts as abandoned
            fresh.recover()
            assert_settled(database, fresh, USER, expected if reached else before)
            assert fresh.recover().total == 0
            operation(fresh, clock)
            assert_settled(database, fresh, USER, expected)


def test_a_finisher_working_from_stale_reads_never_applies_a_change_twice(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A change finished and spent back between our reads and our CAS is not applied again."""
    _crash(database, "credit", 1, True, clock)  # the purchase is stored with its change pending
    other = MongoBalanceRepository(database, clock)
    balances = database.get_collection("balances")
    interfered = []

    def interfere(
        collection: str, method: str, args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        result = call()
        reads_entry = (
            collection == "transactions" and method == "find_one" and "buytokens.key" in args[0]
        )
        if reads_entry and result["buytokens"]["state"] == "pending" and not interfered:
            interfered.append(True)
            other.get_purchase("pi_1")  # finishes the credit completely
            balances.update_one({}, {"$inc": {"tokenCredits": -100_000}})  # LibreChat spends it all
        return result

    slow = MongoBalanceRepository(InterceptingDatabase(database, interfere), clock)
    assert slow.get_purchase("pi_1") is not None
    assert interfered
    assert slow.balance(USER) == 0
    (entry,) = slow.ledger(USER)
    assert (entry.applied, entry.balance_after) == (100_000, 100_000)


def test_a_late_finisher_never_clears_the_pending_changes_of_a_newer_transition(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """Clearing a finished transition's pending list never wipes a later transition's refund."""
    _crash(database, "credit", 1, True, clock)  # the purchase is stored with its credit pending
    other = MongoBalanceRepository(database, clock)
    interfered = []

    def refund_first(
        collection: str, method: str, args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        clears = (
            collection == "buytokens_purchases" and method == "update_one" and "$unset" in args[1]
        )
        if clears and not interfered:
            interfered.append(True)
            other.get_purchase("pi_1")  # finishes the credit
            refunding = MongoBalanceRepository(
                InterceptingDatabase(database, CrashAt(1, after=True)), clock
            )
            with pytest.raises(SimulatedCrash):
                _refund(refunding, clock)  # stores the refund transition, then dies
        return call()

    late = MongoBalanceRepository(InterceptingDatabase(database, refund_first), clock)
    late.get_purchase("pi_1")
    assert interfered
    fresh = MongoBalanceRepository(database, clock)
    assert fresh.recover().purchases == 1
    assert_settled(database, fresh, USER, 50_000)


def test_a_commit_over_unfinished_changes_finishes_them_first(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A transition committed at a version whose own changes are still pending never drops them."""
    _crash(database, "credit", 1, True, clock)  # the purchase is stored with its credit pending
    credited = decide(
        None, succeeded("pi_1"), DEFAULT_CATALOGUE, clock.now(), taken_back=0
    ).transition
    assert credited is not None
    refunded = ChargeRefunded("evt_r", "pi_1", Money(500, "cny"), OCCURRED)
    refund = decide(
        credited.purchase, refunded, DEFAULT_CATALOGUE, clock.now(), taken_back=0
    ).transition
    assert refund is not None
    store = MongoBalanceRepository(database, clock)
    (entry,) = store.commit(refund)
    assert (entry.applied, entry.shortfall) == (-50_000, 0)
    assert_settled(database, store, USER, 50_000)


def test_librechat_spending_between_our_read_and_our_write_is_never_lost(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A LibreChat $inc just before our CAS makes us read again, never overwrite it."""
    balances = database.get_collection("balances")
    store = MongoBalanceRepository(database, clock)
    store.record_adjustment(LedgerChange("admin:seed", USER, EntryKind.ADMIN, 1_000, reason="seed"))
    spent = []

    def spend_first(
        collection: str, method: str, args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        our_cas = collection == "balances" and method == "update_one" and "$push" in args[1]
        if our_cas and len(spent) < 3:
            spent.append(1)
            balances.update_one({}, {"$inc": {"tokenCredits": -10}})
        return call()

    racing = MongoBalanceRepository(InterceptingDatabase(database, spend_first), clock)
    deliver(succeeded("pi_1"), racing, clock)
    assert len(spent) == 3
    assert racing.balance(USER) == 1_000 + 100_000 - 30
    credit = next(e for e in racing.ledger(USER) if e.kind is EntryKind.PURCHASE)
    assert credit.balance_after == 1_000 + 100_000 - 30


def jitter(_collection: str, _method: str, _args: tuple[Any, ...], call: Callable[[], Any]) -> Any:
    """Pause a random instant before each operation, so threads interleave between any two."""
    time.sleep(random.random() / 2_000)
    return call()


def test_twenty_concurrent_deliveries_racing_to_finish_a_crash_credit_once(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """20 threads redelivering a payment whose credit a crash left half done finish it once."""
    _crash(database, "credit", 1, True, clock)
    stores = [
        MongoBalanceRepository(InterceptingDatabase(database, jitter), clock) for _ in range(20)
    ]
    outcomes = run_together([lambda s=s: deliver(succeeded("pi_1"), s, clock) for s in stores])
    assert outcomes == [Disposition.DUPLICATE] * 20
    assert_settled(database, stores[0], USER, 100_000)
    assert len(stores[0].ledger(USER)) == 1


def test_concurrent_librechat_spending_loses_no_update(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """LibreChat $inc spending in threads while ten payments land leaves the exact sum."""
    balances = database.get_collection("balances")
    store = MongoBalanceRepository(InterceptingDatabase(database, jitter), clock)
    store.record_adjustment(
        LedgerChange("admin:seed", USER, EntryKind.ADMIN, 10_000, reason="seed")
    )

    def spend() -> None:
        for _ in range(100):
            balances.update_one({}, {"$inc": {"tokenCredits": -1}})
            time.sleep(random.random() / 10_000)

    credits = [lambda n=n: deliver(succeeded(f"pi_{n}"), store, clock) for n in range(10)]
    run_together([spend] * 4 + credits)
    assert store.balance(USER) == 10_000 + 1_000_000 - 400
    assert balances.count_documents({"buytokens.inflight.0": {"$exists": True}}) == 0


def test_a_recovery_pass_over_a_consistent_store_changes_nothing(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """recover() on a store without unfinished work reports nothing and moves no balance."""
    store = MongoBalanceRepository(database, clock)
    deliver(succeeded("pi_1"), store, clock)
    assert store.recover().total == 0
    assert_settled(database, store, USER, 100_000)


def test_an_unconfirmed_write_is_reported_as_unavailable_and_redelivery_completes_it(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A write concern failure is StoreUnavailable from the driver's error; a retry credits once."""
    failed = []

    def lose_acknowledgement(
        collection: str, method: str, _args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        if collection == "balances" and method in WRITES and not failed:
            failed.append(True)
            call()
            raise WriteConcernError("waiting for replication timed out", 64, {})
        return call()

    flaky = MongoBalanceRepository(InterceptingDatabase(database, lose_acknowledgement), clock)
    with pytest.raises(StoreUnavailable) as raised:
        deliver(succeeded("pi_1"), flaky, clock)
    assert isinstance(raised.value.__cause__, WriteConcernError)
    assert deliver(succeeded("pi_1"), flaky, clock) is Disposition.DUPLICATE
    assert_settled(database, flaky, USER, 100_000)


def test_an_unreachable_server_is_reported_as_unavailable(clock: FixedClock) -> None:
    """With no server listening, construction fails with StoreUnavailable, never a pymongo error."""
    database = connect_mongo(
        "mongodb://127.0.0.1:1/librechat", timeout_ms=300, server_selection_timeout_ms=100
    )
    with pytest.raises(StoreUnavailable) as raised:
        MongoBalanceRepository(database, clock)
    assert isinstance(raised.value.__cause__, PyMongoError)


def test_an_unknown_uri_scheme_is_a_configuration_error() -> None:
    """Only mongodb://, mongodb+srv:// and mongomock:// are accepted."""
    with pytest.raises(ConfigurationError):
        connect_mongo("postgres://localhost/librechat")


def test_a_mongomock_uri_names_its_database() -> None:
    """The path of a mongomock:// URI is the database name, LibreChat's default when absent."""
    assert connect_mongo("mongomock://localhost/shop").name == "shop"
    assert connect_mongo("mongomock://localhost").name == "LibreChat"


def run_together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Start every job at the same moment on its own thread; return their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = job()
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results
