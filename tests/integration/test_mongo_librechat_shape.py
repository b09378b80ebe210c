"""The MongoDB store writes what LibreChat reads, and copes with the data LibreChat left behind."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.mongo.connection import MongoDatabase
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import StoreCorrupted
from buytokens.domain.events import (
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
)
from buytokens.domain.ledger import EntryKind, LedgerChange
from buytokens.domain.money import Money
from buytokens.ports.diagnostics import DuplicateBalance
from tests.support.mongo import OCCURRED, USER, deliver, succeeded

OTHER = "89abcdef0123456789abcdef"


def librechat_balance(user: str, credits: float) -> dict[str, object]:
    """A Balance document as LibreChat's mongoose model creates it."""
    return {
        "user": ObjectId(user),
        "tokenCredits": credits,
        "autoRefillEnabled": False,
        "refillIntervalValue": 30,
        "refillIntervalUnit": "days",
        "lastRefill": OCCURRED,
        "refillAmount": 0,
    }


def test_a_credit_is_stored_in_librechat_shape(database: MongoDatabase, clock: FixedClock) -> None:
    """The balance has an ObjectId user and whole tokenCredits; transactions, LibreChat fields."""
    store = MongoBalanceRepository(database, clock)
    deliver(succeeded("pi_1"), store, clock)
    (balance,) = database.get_collection("balances").find({})
    assert balance["user"] == ObjectId(USER)
    assert type(balance["tokenCredits"]) is int
    assert balance["tokenCredits"] == 100_000
    (tx,) = database.get_collection("transactions").find({})
    assert tx["user"] == ObjectId(USER)
    assert (tx["tokenType"], tx["context"]) == ("credits", "stripe_purchase")
    assert (tx["rawAmount"], tx["tokenValue"]) == (100_000, 100_000)
    assert isinstance(tx["createdAt"], datetime)
    assert isinstance(tx["updatedAt"], datetime)
    assert tx["buytokens"] == {
        "key": "purchase:pi_1",
        "state": "applied",
        "userId": USER,
        "requested": 100_000,
        "applied": 100_000,
        "shortfall": 0,
        "balanceAfter": 100_000,
        "seq": 1,
        "paymentIntentId": "pi_1",
        "reason": "bought package_100k",
    }


def test_user_ids_that_are_not_object_ids_are_stored_as_strings(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A user id other than 24 hex digits is kept verbatim in both collections."""
    store = MongoBalanceRepository(database, clock)
    deliver(succeeded("pi_1", "alice"), store, clock)
    assert database.get_collection("balances").find_one({})["user"] == "alice"
    assert database.get_collection("transactions").find_one({})["user"] == "alice"
    assert store.balance("alice") == 100_000


def test_every_kind_of_change_has_its_context_and_its_applied_amount(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """Each kind has its context, and rawAmount = tokenValue = the delta applied, clamp included."""
    store = MongoBalanceRepository(database, clock)
    deliver(succeeded("pi_1"), store, clock)
    deliver(succeeded("pi_2"), store, clock)
    deliver(ChargeRefunded("evt_r", "pi_1", Money(500, "cny"), OCCURRED), store, clock)
    deliver(
        DisputeChanged("evt_d", "pi_2", "dp_1", Money(1_000, "cny"), DisputeState.OPEN, OCCURRED),
        store,
        clock,
    )
    database.get_collection("balances").update_one(
        {}, {"$inc": {"tokenCredits": -49_990}}
    )  # LibreChat spends
    store.record_adjustment(
        LedgerChange("admin:fix", USER, EntryKind.ADMIN, -100, reason="correction")
    )
    txs = list(database.get_collection("transactions").find({}, sort=[("buytokens.seq", 1)]))
    assert [(t["context"], t["rawAmount"], t["tokenValue"]) for t in txs] == [
        ("stripe_purchase", 100_000, 100_000),
        ("stripe_purchase", 100_000, 100_000),
        ("refund", -50_000, -50_000),
        ("dispute", -100_000, -100_000),
        ("admin", -10, -10),
    ]
    assert (txs[-1]["buytokens"]["requested"], txs[-1]["buytokens"]["shortfall"]) == (-100, 90)
    assert store.balance(USER) == 0


def test_the_seed_database_credits_a_redelivered_payment_once(
    database: MongoDatabase, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An existing Balance and unique index, the same event thrice: one credit, one document."""
    balances = database.get_collection("balances")
    balances.create_index("user", unique=True)
    balances.insert_one(librechat_balance(USER, 5_000))
    store = MongoBalanceRepository(database, clock)
    outcomes = [deliver(succeeded("pi_1"), store, clock) for _ in range(3)]
    assert outcomes == [Disposition.APPLIED, Disposition.DUPLICATE, Disposition.DUPLICATE]
    assert balances.count_documents({}) == 1
    (balance,) = balances.find({})
    assert balance["tokenCredits"] == 105_000
    assert (balance["refillIntervalUnit"], balance["autoRefillEnabled"]) == ("days", False)
    assert (
        "buytokens_one_balance_per_user" not in balances.index_information()
    )  # the seed's index serves
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_librechat_database_gains_a_unique_balance_index(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """Beside LibreChat's non-unique index on user, a unique one refuses a second balance."""
    balances = database.get_collection("balances")
    balances.create_index("user")  # what mongoose's ``index: true`` creates
    balances.insert_one(librechat_balance(USER, 1))
    MongoBalanceRepository(database, clock)
    assert balances.index_information()["buytokens_one_balance_per_user"]["unique"]
    with pytest.raises(DuplicateKeyError):
        balances.insert_one(librechat_balance(USER, 2))


def test_librechat_transactions_do_not_collide_with_ledger_keys(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """LibreChat's own transactions, which have no ledger key, coexist with the unique key index."""
    transactions = database.get_collection("transactions")
    spend = {"user": ObjectId(USER), "tokenType": "prompt", "model": "gpt-4o", "rawAmount": -10}
    transactions.insert_one(dict(spend))
    transactions.insert_one(dict(spend))
    store = MongoBalanceRepository(database, clock)
    deliver(succeeded("pi_1"), store, clock)
    transactions.insert_one(dict(spend))
    assert transactions.count_documents({}) == 4
    assert [e.key for e in store.ledger(USER)] == ["purchase:pi_1"]


def test_a_fractional_librechat_balance_keeps_its_fraction(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A balance LibreChat left at 10.5 credits becomes 100010.5; whole credits are reported."""
    balances = database.get_collection("balances")
    balances.insert_one(librechat_balance(USER, 10.5))
    store = MongoBalanceRepository(database, clock)
    deliver(succeeded("pi_1"), store, clock)
    assert balances.find_one({})["tokenCredits"] == 100_010.5
    assert store.balance(USER) == 100_010
    assert store.ledger(USER)[0].balance_after == 100_010


def test_a_negative_librechat_balance_absorbs_no_takeback(
    database: MongoDatabase, clock: FixedClock
) -> None:
    """A deduction from a balance LibreChat left below zero takes nothing: all shortfall."""
    database.get_collection("balances").insert_one(librechat_balance(USER, -50))
    store = MongoBalanceRepository(database, clock)
    entry = store.record_adjustment(
        LedgerChange("admin:x", USER, EntryKind.ADMIN, -100, reason="x")
    )
    assert (entry.applied, entry.shortfall, entry.balance_after) == (0, 100, -50)
    assert store.balance(USER) == -50


def test_duplicate_balances_are_reported_and_their_user_is_refused_until_merged(
    database: MongoDatabase, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Start-up names them and the fix; their user is refused, unharmed, until merged."""
    balances = database.get_collection("balances")
    first = balances.insert_one(librechat_balance(USER, 300)).inserted_id
    second = balances.insert_one(librechat_balance(USER, 200)).inserted_id
    with caplog.at_level(logging.ERROR, logger="buytokens.adapters.mongo"):
        store = MongoBalanceRepository(database, clock)
    (report,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert USER in report
    assert str(first) in report
    assert str(second) in report
    assert "delete the others" in report
    assert store.duplicate_balances() == (
        DuplicateBalance(USER, (str(first), str(second)), (300.0, 200.0)),
    )

    with pytest.raises(StoreCorrupted, match=USER):
        deliver(succeeded("pi_1"), store, clock)
    with pytest.raises(StoreCorrupted, match=USER):
        store.balance(USER)
    with pytest.raises(StoreCorrupted, match=USER):
        store.record_adjustment(LedgerChange("admin:x", USER, EntryKind.ADMIN, 5, reason="x"))
    assert database.get_collection("buytokens_purchases").count_documents({}) == 0
    assert database.get_collection("transactions").count_documents({}) == 0
    assert deliver(succeeded("pi_2", OTHER), store, clock) is Disposition.APPLIED
    assert store.balance(OTHER) == 100_000

    balances.delete_one({"_id": second})
    balances.update_one({"_id": first}, {"$set": {"tokenCredits": 500}})
    assert store.ensure_indexes() == ()
    assert balances.index_information()["buytokens_one_balance_per_user"]["unique"]
    assert deliver(succeeded("pi_1"), store, clock) is Disposition.APPLIED
    assert deliver(succeeded("pi_1"), store, clock) is Disposition.DUPLICATE
    assert store.balance(USER) == 100_500
