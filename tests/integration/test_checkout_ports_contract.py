"""The CheckoutKeys and EventJournal contracts; deliveries reach the journal through the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from buytokens.adapters.memory import (
    FixedClock,
    InMemoryBalanceRepository,
    InMemoryCheckoutKeys,
    InMemoryEventJournal,
)
from buytokens.adapters.mongo.checkout_keys import MongoCheckoutKeys
from buytokens.adapters.mongo.journal import MongoEventJournal
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.adapters.sqlite.checkout_keys import SqliteCheckoutKeys
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.journal import SqliteEventJournal
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.domain.checkout import Delivery
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys, EventJournal, KeyReservation
from tests.support.concurrency import at_once
from tests.support.stores import mongo_database

AT = datetime(2026, 7, 1, tzinfo=UTC)


@contextmanager
def _memory(_directory: Path) -> Iterator[CheckoutKeys]:
    yield InMemoryCheckoutKeys()


@contextmanager
def _sqlite(directory: Path) -> Iterator[CheckoutKeys]:
    database = SqliteDatabase(directory / "ports.sqlite3")
    try:
        yield SqliteCheckoutKeys(database)
    finally:
        database.close()


@contextmanager
def _mongo(_directory: Path) -> Iterator[CheckoutKeys]:
    with mongo_database() as database:
        yield MongoCheckoutKeys(database)


ADAPTERS: dict[str, Callable[[Path], AbstractContextManager[CheckoutKeys]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "mongo": _mongo,
}


@pytest.fixture(params=sorted(ADAPTERS))
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CheckoutKeys]:
    """Each adapter in turn, empty."""
    with ADAPTERS[request.param](tmp_path) as adapter:
        yield adapter


def test_the_first_reservation_wins_and_later_ones_see_it(keys: CheckoutKeys) -> None:
    """Reserving returns None the first time and the stored reservation after."""
    assert keys.reserve("alice", "k1", "package_1m/card", AT) is None
    assert keys.reserve(
        "alice", "k1", "package_10m/card", AT + timedelta(seconds=1)
    ) == KeyReservation("package_1m/card", AT, None)


def test_keys_belong_to_one_user(keys: CheckoutKeys) -> None:
    """The same key from another user is a separate reservation."""
    assert keys.reserve("alice", "k", "a", AT) is None
    assert keys.reserve("bob", "k", "b", AT) is None


def test_a_completed_reservation_names_its_intent(keys: CheckoutKeys) -> None:
    """After complete, the reservation carries the payment intent id."""
    keys.reserve("alice", "k", "fp", AT)
    keys.complete("alice", "k", "pi_123")
    assert keys.reserve("alice", "k", "fp", AT) == KeyReservation("fp", AT, "pi_123")


def test_release_frees_an_unfinished_reservation_only(keys: CheckoutKeys) -> None:
    """A failed request can be retried with its key; a finished one cannot be released."""
    keys.reserve("alice", "failed", "fp", AT)
    keys.release("alice", "failed")
    assert keys.reserve("alice", "failed", "fp", AT) is None
    keys.reserve("alice", "done", "fp", AT)
    keys.complete("alice", "done", "pi_9")
    keys.release("alice", "done")
    reservation = keys.reserve("alice", "done", "fp", AT)
    assert reservation is not None
    assert reservation.payment_intent_id == "pi_9"


def test_concurrent_reservations_of_one_key_have_one_winner(keys: CheckoutKeys) -> None:
    """Eight racing requests with one key: exactly one gets to create the intent."""
    results = at_once(lambda _: keys.reserve("alice", "race", "fp", AT), 8)
    assert results.count(None) == 1
    assert len(results) == 8


Backend = tuple[BalanceRepository, EventJournal]


@contextmanager
def _memory_backend(_directory: Path) -> Iterator[Backend]:
    journal = InMemoryEventJournal()
    yield InMemoryBalanceRepository(FixedClock(AT), journal), journal


@contextmanager
def _sqlite_backend(directory: Path) -> Iterator[Backend]:
    database = SqliteDatabase(directory / "backend.sqlite3")
    try:
        yield SqliteBalanceRepository(database, FixedClock(AT)), SqliteEventJournal(database)
    finally:
        database.close()


@contextmanager
def _mongo_backend(_directory: Path) -> Iterator[Backend]:
    with mongo_database() as database:
        yield MongoBalanceRepository(database, FixedClock(AT)), MongoEventJournal(database)


BACKENDS: dict[str, Callable[[Path], AbstractContextManager[Backend]]] = {
    "memory": _memory_backend,
    "sqlite": _sqlite_backend,
    "mongo": _mongo_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A balance store and the event journal of the same database."""
    with BACKENDS[request.param](tmp_path) as pair:
        yield pair


def _transition(delivery: Delivery, expected: int | None = None) -> PurchaseTransition:
    purchase = Purchase.pending("pi_j", "alice", "package_100k", 100_000, Money(1_000, "cny"), AT)
    version = 1 if expected is None else expected + 1
    return PurchaseTransition(expected, attrs.evolve(purchase, version=version), (), delivery)


def test_a_transition_journals_its_delivery_with_it(backend: Backend) -> None:
    """The delivery that caused a purchase change is in the journal once the commit returns."""
    store, journal = backend
    store.commit(_transition(Delivery("evt_j", "payment_intent.succeeded", "pi_j", "applied", AT)))
    assert journal.deliveries("evt_j") == ("applied", 1)


def test_the_journal_counts_deliveries_and_keeps_the_latest_disposition(backend: Backend) -> None:
    """Each delivery of an event counts once; the record shows what the last one came to."""
    store, journal = backend
    assert journal.deliveries("evt_1") is None
    store.record_delivery(Delivery("evt_1", "customer.created", None, "applied", AT))
    later = AT + timedelta(seconds=5)
    store.record_delivery(Delivery("evt_1", "customer.created", None, "duplicate", later))
    store.record_delivery(Delivery("evt_2", "customer.created", None, "ignored", AT))
    assert journal.deliveries("evt_1") == ("duplicate", 2)
    assert journal.deliveries("evt_2") == ("ignored", 1)


def test_a_transition_and_a_lone_delivery_count_on_one_record(backend: Backend) -> None:
    """A delivery journalled with its change and a redelivery journalled alone are one event."""
    store, journal = backend
    store.commit(_transition(Delivery("evt_j", "payment_intent.succeeded", "pi_j", "applied", AT)))
    store.record_delivery(Delivery("evt_j", "payment_intent.succeeded", "pi_j", "duplicate", AT))
    assert journal.deliveries("evt_j") == ("duplicate", 2)


def test_a_refused_transition_journals_nothing(backend: Backend) -> None:
    """A commit refused for a stale version leaves no journal line behind."""
    store, journal = backend
    store.commit(_transition(Delivery("evt_first", "t", "pi_j", "applied", AT)))
    with pytest.raises(ConcurrentUpdate):
        store.commit(_transition(Delivery("evt_stale", "t", "pi_j", "applied", AT)))
    assert journal.deliveries("evt_stale") is None
