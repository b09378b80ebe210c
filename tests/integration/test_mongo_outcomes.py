"""What the MongoDB store answers is what happened: grants, reads after a crash, user ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect, WriteConcernError

from buytokens.adapters.memory import FixedClock, SequentialIdSource
from buytokens.adapters.mongo.connection import MongoDatabase
from buytokens.adapters.mongo.recovery import ADJUSTMENT_GRACE
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.domain.errors import ChangeNotApplied, OutcomeUnknown, StoreUnavailable
from buytokens.domain.ledger import EntryKind
from buytokens.domain.purchases import PurchaseStatus
from buytokens.services.admin import GrantDependencies, grant_tokens
from tests.support.crashes import CrashAt, SimulatedCrash
from tests.support.mongo import (
    USER,
    InterceptingDatabase,
    assert_settled,
    deliver,
    succeeded,
)
from tests.support.stores import mongo_database

GRANT = 1_000


def lost_reply() -> Exception:
    return WriteConcernError("waiting for replication timed out", 64, {})


def operator_grants(store: MongoBalanceRepository, ids: SequentialIdSource) -> int:
    """``buytokens grant USER 1000`` run by an operator who believes what it prints.

    Told nothing was granted, they run it again as it was; told the outcome is
    open, they repeat it with the key it names. Returns the tokens it reported.
    """
    key: str | None = None
    for _ in range(5):
        try:
            return grant_tokens(
                GrantDependencies(store, ids), USER, GRANT, "welcome", key=key
            ).applied
        except ChangeNotApplied:
            continue
        except OutcomeUnknown as exc:
            key = exc.retry_key  # the message names it: see the test of an open outcome
        except StoreUnavailable:
            continue  # an error that says nothing: the grant failed, as far as they know
    raise AssertionError("the grant never came through")


def restart_and_recover(database: MongoDatabase, clock: FixedClock) -> MongoBalanceRepository:
    """A new process, long enough later that any abandoned grant counts as abandoned."""
    clock.advance(ADJUSTMENT_GRACE)
    fresh = MongoBalanceRepository(database, clock)
    fresh.recover()
    return fresh


def _grant_writes(clock: FixedClock) -> int:
    counter = CrashAt(None, after=False)
    with mongo_database() as database:
        store = MongoBalanceRepository(InterceptingDatabase(database, counter), clock)
        grant_tokens(GrantDependencies(store, SequentialIdSource("g")), USER, GRANT, "welcome")
    return counter.count


# -- a grant's outcome --------------------------------------------------------------------------


@pytest.mark.parametrize("after", [False, True], ids=["refused", "reply-lost"])
def test_a_grant_whose_write_fails_once_grants_exactly_what_it_reports(
    after: bool, clock: FixedClock
) -> None:
    """A write failing at any step, before or after it took effect, never grants twice."""
    writes = _grant_writes(clock)
    assert writes >= 4
    for n in range(1, writes + 1):
        with mongo_database() as database:
            flaky = CrashAt(n, after=after, error=lost_reply)
            store = MongoBalanceRepository(
                InterceptingDatabase(database, flaky), clock, adjustment_patience=5
            )
            reported = operator_grants(store, SequentialIdSource(f"g{n}-"))
            fresh = restart_and_recover(database, clock)
            assert reported == GRANT
            assert_settled(database, fresh, USER, reported)


def test_a_grant_the_balance_keeps_refusing_is_cancelled_and_says_so(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A grant the balance keeps refusing is cancelled, and so never applied later."""
    refusing = [True]

    def refuse_credits(
        collection: str, method: str, args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        credits = method == "update_one" and "tokenCredits" in args[1].get("$set", {})
        if credits and refusing:
            raise AutoReconnect("connection reset")
        return call()

    store = MongoBalanceRepository(
        InterceptingDatabase(database, refuse_credits), clock, adjustment_patience=0.1
    )
    ids = SequentialIdSource("g")
    with pytest.raises(ChangeNotApplied) as raised:
        grant_tokens(GrantDependencies(store, ids), USER, GRANT, "welcome")
    assert "nothing was granted" in raised.value.message
    assert store.balance(USER) == 0
    refusing.clear()
    assert operator_grants(store, ids) == GRANT
    assert_settled(database, restart_and_recover(database, clock), USER, GRANT)
    cancelled = database.get_collection("transactions").find_one({"buytokens.state": "cancelled"})
    assert cancelled is not None
    assert (cancelled["tokenValue"], cancelled["buytokens"]["cancelledKey"]) == (0, "admin:g-1")


def test_a_grant_the_store_cannot_confirm_names_the_key_that_finishes_it(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """With the store gone after the entry is written, the answer is open, and its key closes it."""
    down = []

    def die_after_the_entry(
        collection: str, method: str, args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        if down:
            raise AutoReconnect("no server")
        result = call()
        if collection == "transactions" and method == "insert_one":
            down.append(True)
        return result

    store = MongoBalanceRepository(
        InterceptingDatabase(database, die_after_the_entry), clock, adjustment_patience=0.1
    )
    with pytest.raises(OutcomeUnknown) as raised:
        grant_tokens(GrantDependencies(store, SequentialIdSource("g")), USER, GRANT, "welcome")
    assert raised.value.retry_key == "g-1"
    assert "--key g-1" in raised.value.message
    down.clear()
    # Unrepeated, a grant that never reached the balance is cancelled, never applied ...
    fresh = restart_and_recover(database, clock)
    assert fresh.recover().total == 0
    assert_settled(database, fresh, USER, 0)
    # ... and repeating it with its key grants it once.
    entry = grant_tokens(
        GrantDependencies(fresh, SequentialIdSource("x")), USER, GRANT, "welcome", key="g-1"
    )
    assert entry.applied == GRANT
    assert (
        grant_tokens(
            GrantDependencies(fresh, SequentialIdSource("x")), USER, GRANT, "welcome", key="g-1"
        )
        == entry
    )
    assert_settled(database, restart_and_recover(database, clock), USER, GRANT)


def test_a_recovery_pass_cancelling_a_grant_in_progress_makes_it_start_again(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A pass taking a running grant for abandoned costs a retry, never a lost or double grant."""
    impatient = MongoBalanceRepository(database, clock, adjustment_grace=ADJUSTMENT_GRACE * 0)
    passes = []

    def recover_after_the_entry(
        collection: str, method: str, args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        result = call()
        if collection == "transactions" and method == "insert_one" and not passes:
            passes.append(impatient.recover())
        return result

    store = MongoBalanceRepository(InterceptingDatabase(database, recover_after_the_entry), clock)
    entry = grant_tokens(GrantDependencies(store, SequentialIdSource("g")), USER, GRANT, "welcome")
    assert passes[0].cancelled == 1
    assert (entry.applied, entry.balance_after) == (GRANT, GRANT)
    assert_settled(database, store, USER, GRANT)


# -- reads finish what a crash left -----------------------------------------------------------


READS: dict[str, Callable[[MongoBalanceRepository], object]] = {
    "balance": lambda store: store.balance(USER),
    "purchases": lambda store: store.purchases(USER),
    "history": lambda store: store.ledger(USER),
}


def _credit_writes(clock: FixedClock) -> int:
    counter = CrashAt(None, after=False)
    with mongo_database() as database:
        deliver(
            succeeded("pi_1"),
            MongoBalanceRepository(InterceptingDatabase(database, counter), clock),
            clock,
        )
    return counter.count


@pytest.mark.parametrize("read", sorted(READS))
def test_a_read_after_a_crash_mid_credit_finishes_the_credit(
    read: str, database: MongoDatabase, clock: FixedClock
) -> None:
    """After a crash between storing a success and crediting it, any read of the user credits it."""
    crashing = MongoBalanceRepository(InterceptingDatabase(database, CrashAt(1, after=True)), clock)
    with pytest.raises(SimulatedCrash):
        deliver(succeeded("pi_1"), crashing, clock)
    READS[read](MongoBalanceRepository(database, clock))
    (balance,) = database.get_collection("balances").find({})
    assert balance["tokenCredits"] == 100_000
    assert_settled(database, MongoBalanceRepository(database, clock), USER, 100_000)


@pytest.mark.parametrize("after", [False, True], ids=["before-write", "after-write"])
def test_a_purchase_listed_as_succeeded_has_its_tokens_in_the_balance(
    after: bool, clock: FixedClock
) -> None:
    """Whatever write a crash interrupts, the list and the balance read next agree."""
    for n in range(1, _credit_writes(clock) + 1):
        with mongo_database() as database:
            crashing = MongoBalanceRepository(
                InterceptingDatabase(database, CrashAt(n, after=after)), clock
            )
            with pytest.raises(SimulatedCrash):
                deliver(succeeded("pi_1"), crashing, clock)
            store = MongoBalanceRepository(database, clock)
            listed = store.purchases(USER)
            paid = bool(listed) and listed[0].status is PurchaseStatus.SUCCEEDED
            assert store.balance(USER) == (100_000 if paid else 0)
            assert sum(entry.applied for entry in store.ledger(USER)) == store.balance(USER)


def test_reads_with_nothing_pending_write_nothing(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """On a consistent store, balance, purchases and history only read."""
    deliver(succeeded("pi_1"), MongoBalanceRepository(database, clock), clock)
    writes = CrashAt(None, after=False)
    store = MongoBalanceRepository(InterceptingDatabase(database, writes), clock)
    before = writes.count  # the constructor's index and migration pass
    for read in READS.values():
        read(store)
    assert writes.count == before


# -- one user, one spelling ---------------------------------------------------------------------


def test_mixed_case_spellings_of_one_object_id_share_one_ledger(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """An upper-case and a lower-case id are one user: one balance, one ledger, one list."""
    store = MongoBalanceRepository(database, clock)
    deliver(succeeded("pi_1", USER.upper()), store, clock)
    grant_tokens(GrantDependencies(store, SequentialIdSource("g")), USER, GRANT, "welcome")
    for spelling in (USER, USER.upper()):
        assert store.balance(spelling) == 100_000 + GRANT
        assert {e.kind for e in store.ledger(spelling)} == {EntryKind.PURCHASE, EntryKind.ADMIN}
        assert [p.payment_intent_id for p in store.purchases(spelling)] == ["pi_1"]
    assert_settled(database, store, USER, 100_000 + GRANT)
    ids = {doc["buytokens"]["userId"] for doc in database.get_collection("transactions").find({})}
    assert ids == {USER}
    assert database.get_collection("buytokens_purchases").find_one({})["userId"] == USER


def test_ids_stored_in_upper_case_by_earlier_versions_are_rewritten_at_start_up(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """Purchases and entries an earlier version kept under an upper-case id join the user's own."""
    deliver(succeeded("pi_1"), MongoBalanceRepository(database, clock), clock)
    database.get_collection("buytokens_purchases").update_one(
        {}, {"$set": {"userId": USER.upper()}}
    )
    database.get_collection("transactions").update_one(
        {}, {"$set": {"buytokens.userId": USER.upper()}}
    )
    store = MongoBalanceRepository(database, clock)
    assert [p.user_id for p in store.purchases(USER)] == [USER]
    assert [e.user_id for e in store.ledger(USER)] == [USER]
    assert database.get_collection("balances").find_one({})["user"] == ObjectId(USER)
