"""The CheckoutKeys and EventJournal contracts, and deliveries journalled with transitions."""

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
from buytokens.domain.checkout import Delivery, ReceivedEvent
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys, EventJournal, KeyReservation
from tests.support.concurrency import at_once
from tests.support.stores import mongo_database

AT = datetime(2026, 7, 1, tzinfo=UTC)
Ports = tuple[CheckoutKeys, EventJournal]


@contextmanager
def _memory(_directory: Path) -> Iterator[Ports]:
    yield InMemoryCheckoutKeys(), InMemoryEventJournal()


@contextmanager
def _sqlite(directory: Path) -> Iterator[Ports]:
    database = SqliteDatabase(directory / "ports.sqlite3")
    try:
        yield SqliteCheckoutKeys(database), SqliteEventJournal(database)
    finally:
        database.close()


@contextmanager
def _mongo(_directory: Path) -> Iterator[Ports]:
    with mongo_database() as database:
        yield MongoCheckoutKeys(database), MongoEventJournal(database)


ADAPTERS: dict[str, Callable[[Path], AbstractContextManager[Ports]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "mongo": _mongo,
}


@pytest.fixture(params=sorted(ADAPTERS))
def ports(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ports]:
    """Each adapter pair in turn, empty."""
    with ADAPTERS[request.param](tmp_path) as pair:
        yield pair


def test_the_first_reservation_wins_and_later_ones_see_it(ports: Ports) -> None:
    """Reserving returns None the first time and the stored reservation after."""
    keys, _ = ports
    assert keys.reserve("alice", "k1", "package_1m/card", AT) is None
    assert keys.reserve(
        "alice", "k1", "package_10m/card", AT + timedelta(seconds=1)
    ) == KeyReservation("package_1m/card", AT, None)


def test_keys_belong_to_one_user(ports: Ports) -> None:
    """The same key from another user is a separate reservation."""
    keys, _ = ports
    assert keys.reserve("alice", "k", "a", AT) is None
    assert keys.reserve("bob", "k", "b", AT) is None


def test_a_completed_reservation_names_its_intent(ports: Ports) -> None:
    """After complete, the reservation carries the payment intent id."""
    keys, _ = ports
    keys.reserve("alice", "k", "fp", AT)
    keys.complete("alice", "k", "pi_123")
    assert keys.reserve("alice", "k", "fp", AT) == KeyReservation("fp", AT, "pi_123")


def test_release_frees_an_unfinished_reservation_only(ports: Ports) -> None:
    """A failed request can be retried with its key; a finished one cannot be released."""
    keys, _ = ports
    keys.reserve("alice", "failed", "fp", AT)
    keys.release("alice", "failed")
    assert keys.reserve("alice", "failed", "fp", AT) is None
    keys.reserve("alice", "done", "fp", AT)
    keys.complete("alice", "done", "pi_9")
    keys.release("alice", "done")
    reservation = keys.reserve("alice", "done", "fp", AT)
    assert reservation is not None
    assert reservation.payment_intent_id == "pi_9"


def test_concurrent_reservations_of_one_key_have_one_winner(ports: Ports) -> None:
    """Eight racing requests with one key: exactly one gets to create the intent."""
    keys, _ = ports
    results = at_once(lambda _: keys.reserve("alice", "race", "fp", AT), 8)
    assert results.count(None) == 1
    assert len(results) == 8


def _event(event_id: str) -> ReceivedEvent:
    return ReceivedEvent(event_id, "customer.created", AT, None)


def test_the_journal_counts_deliveries_and_keeps_the_latest_disposition(ports: Ports) -> None:
    """Each delivery of an event counts once; the record shows what the last one came to."""
    _, journal = ports
    assert journal.deliveries("evt_1") is None
    journal.record(_event("evt_1"), "applied", AT)
    journal.record(_event("evt_1"), "duplicate", AT + timedelta(seconds=5))
    journal.record(_event("evt_2"), "ignored", AT)
    assert journal.deliveries("evt_1") == ("duplicate", 2)
    assert journal.deliveries("evt_2") == ("ignored", 1)


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


def test_a_refused_transition_journals_nothing(backend: Backend) -> None:
    """A commit refused for a stale version leaves no journal line behind."""
    store, journal = backend
    store.commit(_transition(Delivery("evt_first", "t", "pi_j", "applied", AT)))
    with pytest.raises(ConcurrentUpdate):
        store.commit(_transition(Delivery("evt_stale", "t", "pi_j", "applied", AT)))
    assert journal.deliveries("evt_stale") is None
